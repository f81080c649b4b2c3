"""The notifier's own tables. The openIMIS mirror models live in notifier.openimis (re-exported here)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

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
from notifier.types import NOTIFICATION_TYPES

__all__ = [
    "Family",
    "FamilyNotification",
    "Insuree",
    "Language",
    "Location",
    "Officer",
    "Policy",
    "Product",
    "VersionedModel",
    "VersionedQuerySet",
]

NOTIFICATION_TYPE_CHOICES = [(name, name.replace("_", " ").capitalize()) for name in NOTIFICATION_TYPES]


# --- The notifier's own tables ------------------------------------------------------------------------------


class FamilyPhone(models.Model):
    """The phone a family is texted on, by the sender's rule (head first, then members by id; first valid one).

    Derived from tblInsuree by notifier.phones.refresh_family_phones so that eligibility modes, detection and
    the report can filter on "has a valid phone" in SQL. A family without a row has no valid phone.
    """

    # No database constraint on references to openIMIS tables: attached, they are openIMIS's, in another schema.
    family = models.OneToOneField(
        Family, models.DO_NOTHING, primary_key=True, related_name="sms_phone", db_constraint=False
    )
    insuree = models.ForeignKey(Insuree, models.DO_NOTHING, related_name="+", db_constraint=False)
    phone = models.CharField(max_length=20, help_text="E.164")
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notifier_family_phone"

    def __str__(self) -> str:
        return f"Family {self.family_id}: {self.phone}"


class ConsentChange(models.Model):
    """Provenance of every consent change (who or what changed tblFamilySMS, and how). The notifier's own table:
    tblFamilySMS belongs to openIMIS and gets no column. Written by the consent service (notifier.consent_log)."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Admin user"
        INBOUND_SMS = "inbound_sms", "Inbound SMS"
        SERVICE_API = "service_api", "Service API"
        FAMILY_SERVICE = "family_service", "Family service"

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        WITHDRAWN = "withdrawn", "Withdrawn (opt-out)"
        RETIRED = "retired", "Retired (family deleted)"

    # No database constraint: a log of the notifier's own must never stop a family row being removed elsewhere.
    family = models.ForeignKey(Family, models.DO_NOTHING, related_name="+", db_constraint=False)
    changed_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=10, choices=Action.choices)
    approval = models.BooleanField(help_text="Approval of SMS after the change.")
    language = models.CharField(max_length=5, blank=True, help_text="Language of SMS after the change.")
    user = models.ForeignKey(
        "auth.User", models.SET_NULL, null=True, blank=True, related_name="+", help_text="The admin user, if any."
    )
    phone = models.CharField(max_length=20, blank=True, help_text="The number an inbound SMS came from.")
    text = models.CharField(max_length=500, blank=True, help_text="The inbound SMS as received.")
    detail = models.CharField(max_length=200, blank=True, help_text="E.g. the provider account of an inbound SMS.")

    class Meta:
        db_table = "notifier_consent_change"
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["family", "changed_at"], name="consent_change_family_idx")]

    def __str__(self) -> str:
        return (
            f"Family {self.family_id}: {self.action} by {self.get_source_display()} at {self.changed_at:%Y-%m-%d %H:%M}"
        )


def type_field(**kwargs: Any) -> models.CharField[str, str]:
    return models.CharField(max_length=32, choices=NOTIFICATION_TYPE_CHOICES, **kwargs)


class NotificationTemplate(models.Model):
    """The text a family reads, per (notification type, language). Shipped defaults come from a data migration."""

    notification_type = type_field()
    # A template may exist for a language tblLanguages lacks (attached, openIMIS owns that table): no constraint.
    language = models.ForeignKey(Language, models.PROTECT, related_name="templates", db_constraint=False)
    text = models.TextField()
    late_text = models.TextField(
        blank=True,
        help_text="Optional: sent instead of the text when the message goes out after its event date (catch-up, "
        "retries, quiet hours), so it never says 'today' a day late. Empty: the text reads right either way.",
    )
    replace_lookalikes = models.BooleanField(
        default=False, help_text="Replace characters that force UCS-2 (curly quotes, NBSP, en dash) on render."
    )
    edited = models.BooleanField(default=False, help_text="Set once an operator edits it; migrations leave it alone.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "notifier_template"
        # By code, not by the Language's ordering: that would join tblLanguages and drop templates it lacks.
        ordering = ["notification_type", "language_id"]
        constraints = [
            models.UniqueConstraint(fields=["notification_type", "language"], name="template_one_per_type_language")
        ]

    def __str__(self) -> str:
        return f"{self.notification_type} [{self.language_id}]"

    def clean(self) -> None:
        """Refuse a text that would fail at send time: unknown placeholder, broken brace, nothing to say."""
        from notifier.rendering import TemplateError, validate_template

        try:
            validate_template(self.text or "")
        except TemplateError as exc:
            raise ValidationError({"text": str(exc)}, code="invalid_template") from None
        if self.late_text:
            try:
                validate_template(self.late_text)
            except TemplateError as exc:
                raise ValidationError({"late_text": str(exc)}, code="invalid_template") from None
        from notifier.rendering import AMOUNT_TYPES

        uses_amount = "{AmountToBePaid}" in f"{self.text} {self.late_text}"
        if uses_amount and self.notification_type and self.notification_type not in AMOUNT_TYPES:
            message = "{AmountToBePaid} is known only for " + ", ".join(sorted(AMOUNT_TYPES))
            raise ValidationError({"text": message}, code="invalid_template")


def new_callback_token() -> str:
    """The unguessable part of an account's receipt and inbound URLs."""
    return secrets.token_urlsafe(24)


class ProviderAccount(models.Model):
    """One configured SMS gateway. Enabled accounts are tried in priority order (lowest first)."""

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=64, help_text="Slug of a registered provider class.")
    enabled = models.BooleanField(default=True)
    priority = models.PositiveIntegerField(default=100)
    config = models.JSONField(default=dict, blank=True)
    rate_limit_per_second = models.FloatField(null=True, blank=True, help_text="Empty: the NOTIFIER default.")
    callback_token = models.CharField(
        max_length=64,
        unique=True,
        default=new_callback_token,
        help_text="Secret part of this account's delivery-receipt and inbound-message URLs; change it to revoke them.",
    )
    price_per_segment = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="What one SMS segment costs through this account (the dashboard's forecast of the SMS budget).",
    )
    currency = models.CharField(max_length=3, blank=True, default="TZS", help_text="ISO code, e.g. TZS.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "notifier_provider_account"
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"


class Outbox(models.Model):
    """At most one message per (policy, type), ever: the unique constraint is the exactly-once guarantee."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Outcome unknown"
        CANCELLED = "cancelled", "Cancelled"
        DELIVERED = "delivered", "Delivered (receipt)"
        UNDELIVERED = "undelivered", "Not delivered (receipt)"

    policy = models.ForeignKey(Policy, models.DO_NOTHING, related_name="+", db_constraint=False)
    notification_type = type_field()
    event_date = models.DateField()
    family = models.ForeignKey(Family, models.DO_NOTHING, related_name="+", db_constraint=False)
    recipient = models.CharField(max_length=20, help_text="E.164")
    language = models.CharField(max_length=5, blank=True)
    text = models.TextField(blank=True)
    encoding = models.CharField(max_length=8, blank=True)
    segments = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    provider_account = models.ForeignKey(ProviderAccount, models.SET_NULL, null=True, blank=True, related_name="+")
    detection_run = models.ForeignKey(
        "DetectionRun",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The run that queued this row (tells concurrent runs apart; ids of conflict-ignored inserts).",
    )
    provider_reference = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    send_started_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set just before the first provider call of a delivery; a row a dead worker left `sending` "
        "without it was never tried and is queued again, with it its outcome is unknown.",
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    requeued_at = models.DateTimeField(
        null=True, blank=True, help_text="When an operator last resent it; earlier permanent failures no longer count."
    )
    lease_owner = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text="The delivery run that claimed the row (a random token); only it may send the row or write its "
        "outcome.",
    )
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The owner extends it while it works; once it has passed, the sweeper takes the row back.",
    )
    enqueued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the poll last handed the row to a delivery task (so it does not hand it twice).",
    )
    receipt_status = models.CharField(
        max_length=40, blank=True, help_text="The gateway's status word in its last delivery receipt."
    )
    receipt_reason = models.CharField(max_length=300, blank=True, help_text="The gateway's reason, when not delivered.")
    receipt_at = models.DateTimeField(null=True, blank=True, help_text="When the last delivery receipt arrived.")

    class Meta:
        db_table = "notifier_outbox"
        verbose_name_plural = "outbox"
        constraints = [
            models.UniqueConstraint(fields=["policy", "notification_type"], name="outbox_once_per_policy_type")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_status_due_idx"),
            models.Index(
                fields=["lease_expires_at"], name="outbox_sending_lease_idx", condition=models.Q(status="sending")
            ),
            # receipts name the gateway's message id: found per account
            models.Index(fields=["provider_account", "provider_reference"], name="outbox_provider_ref_idx"),
            # the dashboard's last 30 days, read from the index alone
            models.Index(fields=["created_at", "notification_type", "status"], name="outbox_created_type_status_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.notification_type} → {self.recipient} ({self.status})"


class DeliveryAttempt(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        TRANSIENT = "transient", "Transient failure"
        PERMANENT = "permanent", "Permanent failure"
        UNKNOWN = "unknown", "Outcome unknown"
        SKIPPED = "skipped", "Skipped (breaker open)"

    outbox = models.ForeignKey(Outbox, models.CASCADE, related_name="attempts_log")
    provider_account = models.ForeignKey(ProviderAccount, models.SET_NULL, null=True, blank=True, related_name="+")
    provider = models.CharField(max_length=64)
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "notifier_delivery_attempt"
        ordering = ["started_at", "id"]
        indexes = [
            # the dashboard's per-account last success and error rate
            models.Index(fields=["provider_account", "outcome", "started_at"], name="attempt_account_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.outcome} for outbox #{self.outbox_id}"


class Decision(models.Model):
    """The decision trace: why a (policy, type) was queued, skipped (reason) or became obsolete."""

    class Outcome(models.TextChoices):
        QUEUED = "queued", "Queued"
        SKIPPED = "skipped", "Skipped"
        OBSOLETE = "obsolete", "Obsolete"

    class Reason(models.TextChoices):
        NONE = "", "—"
        NO_CONSENT = "no_consent", "No consent"
        OPTED_OUT = "opted_out", "Opted out (the family sent STOP)"
        NO_VALID_PHONE = "no_valid_phone", "No valid phone"
        TYPE_DISABLED = "type_disabled", "Type disabled"
        SUPERSEDED_BY_STARTING = "superseded_by_starting", "Superseded by starting"
        TOO_LATE = "too_late", "Event date left the due window"

    policy = models.ForeignKey(Policy, models.DO_NOTHING, related_name="+", db_constraint=False)
    notification_type = type_field()
    event_date = models.DateField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    first_evaluated_at = models.DateTimeField(default=timezone.now)
    last_evaluated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notifier_decision"
        constraints = [
            models.UniqueConstraint(fields=["policy", "notification_type"], name="decision_one_per_policy_type")
        ]
        indexes = [
            models.Index(fields=["notification_type", "outcome"], name="decision_type_outcome_idx"),
            # the dashboard's skipped-by-reason of the last 30 days, read from the index alone
            models.Index(
                fields=["outcome", "last_evaluated_at", "notification_type", "reason"], name="decision_recent_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.notification_type} policy {self.policy_id}: {self.outcome} {self.reason}".strip()


class DetectionRun(models.Model):
    """One detection run of one type for one scheme date; the last completed one is the catch-up watermark."""

    notification_type = type_field()
    run_date = models.DateField()
    window_start = models.DateField()
    window_end = models.DateField()
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    queued = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    obsolete = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "notifier_detection_run"
        indexes = [models.Index(fields=["notification_type", "completed_at"], name="run_type_completed_idx")]

    def __str__(self) -> str:
        return f"{self.notification_type} {self.run_date}"


class DispatcherRun(models.Model):
    """One dispatcher run that got the lock; the last completed one is the beat heartbeat the health check reads."""

    run_date = models.DateField()
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    notification_types = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "notifier_dispatcher_run"
        indexes = [models.Index(fields=["completed_at"], name="dispatcher_run_completed_idx")]

    def __str__(self) -> str:
        state = f"completed {self.completed_at:%Y-%m-%d %H:%M}" if self.completed_at else "not completed"
        return f"Dispatcher run {self.run_date} ({state})"


class ForecastDay(models.Model):
    """The dashboard's forecast, a summary table: per day and type, the messages detection would queue and the SMS
    segments they cost. Recomputed by the `refresh_forecast` task (a dry-run detection per day), read in one query."""

    day = models.DateField()
    notification_type = type_field()
    messages = models.PositiveIntegerField(default=0)
    segments = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notifier_forecast_day"
        constraints = [models.UniqueConstraint(fields=["day", "notification_type"], name="forecast_one_per_day_type")]

    def __str__(self) -> str:
        return f"{self.day} {self.notification_type}: {self.messages}"


class ReportFile(models.Model):
    """A report produced by a worker (PDF always, JSON/CSV above NOTIFIER_REPORT_ASYNC_FAMILIES): its progress, then
    its file under VAR_DIR/reports until `expires_at` (NOTIFIER_REPORT_KEEP_HOURS), when housekeeping deletes it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Being produced"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    query = models.JSONField(default=dict, help_text="The report's parameters, as the endpoint got them.")
    format = models.CharField(max_length=4)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent.")
    families = models.PositiveIntegerField(null=True, blank=True)
    file_name = models.CharField(max_length=200, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notifier_report_file"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.format.upper()} report {self.file_name or self.uuid} ({self.status})"


class NotificationReport(models.Model):
    """No table: it anchors the report's permissions (`notifier.report_right_<code>`) and its admin page.

    The permissions themselves come from config (`family_policy_notification_report_perms`), so they are
    created by a data migration and the `report_permissions` command rather than by Meta.permissions.
    """

    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "family policy notification report"
        verbose_name_plural = "family policy notification report"


class FakeGatewayMessage(models.Model):
    """What the fake eGA gateway (test_sms endpoint) received, so a demo can show its messages were sent."""

    received_at = models.DateTimeField(default=timezone.now)
    recipients = models.CharField(max_length=200)
    message = models.TextField()
    sender_id = models.CharField(max_length=100, blank=True)
    mobile_service_id = models.CharField(max_length=100, blank=True)
    request_datetime = models.CharField(max_length=32, blank=True)
    user_id = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "notifier_fake_gateway_message"
        ordering = ["-received_at", "-id"]
        verbose_name = "test SMS gateway message"

    def __str__(self) -> str:
        return f"{self.recipients}: {self.message[:40]}"


class ApiToken(models.Model):
    """A per-user token for API clients of the report (`Authorization: Token <key>`); only a digest is stored.

    Created by `manage.py api_token create USER` (the key is shown once), revoked by deleting it in the admin.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="notifier_api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, e.g. the calling system.")
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notifier_api_token"
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}{', ' + self.name if self.name else ''})"
