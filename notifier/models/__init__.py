"""The notifier's own tables, by concern (families, messages, records); the openIMIS mirror models live in
notifier.openimis. Every model is importable from here, as Django's app registry and the code expect."""

from notifier.models.families import ConsentChange, FamilyPhone
from notifier.models.messages import (
    NOTIFICATION_TYPE_CHOICES,
    DeliveryAttempt,
    FakeGatewayMessage,
    NotificationTemplate,
    Outbox,
    ProviderAccount,
    new_callback_token,
    type_field,
)
from notifier.models.records import (
    ApiToken,
    Decision,
    DetectionRun,
    DispatcherRun,
    ForecastDay,
    NotificationReport,
    ReportFile,
)
from notifier.openimis.models import (
    Family,
    FamilyNotification,
    Insuree,
    Language,
    Location,
    Officer,
    Policy,
    Product,
    VersionedModel,
    VersionedQuerySet,
)

__all__ = [
    "NOTIFICATION_TYPE_CHOICES",
    "ApiToken",
    "ConsentChange",
    "Decision",
    "DeliveryAttempt",
    "DetectionRun",
    "DispatcherRun",
    "FakeGatewayMessage",
    "Family",
    "FamilyNotification",
    "FamilyPhone",
    "ForecastDay",
    "Insuree",
    "Language",
    "Location",
    "NotificationReport",
    "NotificationTemplate",
    "Officer",
    "Outbox",
    "Policy",
    "Product",
    "ProviderAccount",
    "ReportFile",
    "VersionedModel",
    "VersionedQuerySet",
    "new_callback_token",
    "type_field",
]
