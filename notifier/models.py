"""openIMIS mirror models (SPEC §2: same tables and columns) and the notifier's own models."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from notifier.config import NOTIFICATION_TYPES

_V = TypeVar("_V", bound=models.Model)

NOTIFICATION_TYPE_CHOICES = [(name, name.replace("_", " ").capitalize()) for name in NOTIFICATION_TYPES]


class VersionedQuerySet(models.QuerySet[_V]):
    def current(self) -> VersionedQuerySet[_V]:
        """openIMIS keeps history in the same table: the current row is the one with ValidityTo IS NULL."""
        return self.filter(validity_to__isnull=True)


class VersionedModel(models.Model):
    """A row versioned the openIMIS way: history rows carry ValidityTo and LegacyID = the current row's id."""

    validity_from = models.DateTimeField(db_column="ValidityFrom", default=timezone.now)
    validity_to = models.DateTimeField(db_column="ValidityTo", null=True, blank=True)
    legacy_id = models.IntegerField(db_column="LegacyID", null=True, blank=True)

    objects = VersionedQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_current(self) -> bool:
        return self.validity_to is None

    def save_history(self, at: datetime | None = None) -> None:
        """Copy the stored values into a history row, then stamp this (current) row as valid from `at`.

        Call before saving new values on a current row; the caller saves the row afterwards.
        """
        at = at or timezone.now()
        with transaction.atomic():
            stored = type(self).objects.select_for_update().get(pk=self.pk)
            stored.pk = None
            stored._state.adding = True
            stored.validity_to = at
            stored.legacy_id = self.pk
            stored.save(force_insert=True)
            self.validity_from = at

    def retire(self, at: datetime | None = None) -> None:
        """openIMIS deletes by closing the current row's validity."""
        self.validity_to = at or timezone.now()
        self.save(update_fields=["validity_to"])


class Location(VersionedModel):
    class Type(models.TextChoices):
        REGION = "R", "Region"
        DISTRICT = "D", "District"
        WARD = "W", "Ward / municipality"
        VILLAGE = "V", "Village"

    id = models.AutoField(db_column="LocationId", primary_key=True)
    uuid = models.UUIDField(db_column="LocationUUID", default=uuid.uuid4, db_index=True)
    code = models.CharField(db_column="LocationCode", max_length=8)
    name = models.CharField(db_column="LocationName", max_length=50)
    type = models.CharField(db_column="LocationType", max_length=1, choices=Type.choices)
    parent = models.ForeignKey(
        "self", models.DO_NOTHING, db_column="ParentLocationId", null=True, blank=True, related_name="children"
    )

    class Meta:
        db_table = "tblLocations"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Officer(VersionedModel):
    id = models.AutoField(db_column="OfficerID", primary_key=True)
    uuid = models.UUIDField(db_column="OfficerUUID", default=uuid.uuid4, db_index=True)
    code = models.CharField(db_column="Code", max_length=8)
    last_name = models.CharField(db_column="LastName", max_length=100)
    other_names = models.CharField(db_column="OtherNames", max_length=100)
    phone = models.CharField(db_column="Phone", max_length=50, null=True, blank=True)
    location = models.ForeignKey(Location, models.DO_NOTHING, db_column="LocationId", null=True, blank=True)

    class Meta:
        db_table = "tblOfficer"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.other_names} {self.last_name}"


class Product(VersionedModel):
    id = models.AutoField(db_column="ProdID", primary_key=True)
    uuid = models.UUIDField(db_column="ProdUUID", default=uuid.uuid4, db_index=True)
    code = models.CharField(db_column="ProductCode", max_length=8)
    name = models.CharField(db_column="ProductName", max_length=100)
    conversion_product = models.ForeignKey(
        "self", models.DO_NOTHING, db_column="ConversionProdID", null=True, blank=True, related_name="+"
    )

    class Meta:
        db_table = "tblProduct"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Family(VersionedModel):
    id = models.AutoField(db_column="FamilyID", primary_key=True)
    uuid = models.UUIDField(db_column="FamilyUUID", default=uuid.uuid4, db_index=True)
    head_insuree = models.ForeignKey(
        "Insuree", models.DO_NOTHING, db_column="InsureeID", null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(Location, models.DO_NOTHING, db_column="LocationId", null=True, blank=True)

    class Meta:
        db_table = "tblFamilies"
        verbose_name_plural = "families"

    def __str__(self) -> str:
        head = self.head_insuree
        return f"Family {self.id} ({head.chf_id} {head.last_name})" if head else f"Family {self.id}"


class Insuree(VersionedModel):
    id = models.AutoField(db_column="InsureeID", primary_key=True)
    uuid = models.UUIDField(db_column="InsureeUUID", default=uuid.uuid4, db_index=True)
    chf_id = models.CharField(db_column="CHFID", max_length=12)
    last_name = models.CharField(db_column="LastName", max_length=100)
    other_names = models.CharField(db_column="OtherNames", max_length=100)
    family = models.ForeignKey(
        Family, models.DO_NOTHING, db_column="FamilyID", null=True, blank=True, related_name="members"
    )
    head = models.BooleanField(db_column="IsHead", default=False)
    phone = models.CharField(db_column="Phone", max_length=50, null=True, blank=True)
    dob = models.DateField(db_column="DOB", null=True, blank=True)

    class Meta:
        db_table = "tblInsuree"
        indexes = [models.Index(fields=["chf_id"], name="insuree_chfid_idx")]

    def __str__(self) -> str:
        return f"{self.chf_id} {self.other_names} {self.last_name}"


class Policy(VersionedModel):
    class Stage(models.TextChoices):
        NEW = "N", "New"
        RENEWAL = "R", "Renewal"

    class Status(models.IntegerChoices):
        IDLE = 1, "Idle"
        ACTIVE = 2, "Active"
        SUSPENDED = 4, "Suspended"
        EXPIRED = 8, "Expired"
        READY = 16, "Ready"

    id = models.AutoField(db_column="PolicyID", primary_key=True)
    uuid = models.UUIDField(db_column="PolicyUUID", default=uuid.uuid4, db_index=True)
    stage = models.CharField(db_column="PolicyStage", max_length=1, choices=Stage.choices, default=Stage.NEW)
    status = models.SmallIntegerField(db_column="PolicyStatus", choices=Status.choices, default=Status.IDLE)
    enroll_date = models.DateField(db_column="EnrollDate")
    start_date = models.DateField(db_column="StartDate")
    effective_date = models.DateField(db_column="EffectiveDate", null=True, blank=True)
    expiry_date = models.DateField(db_column="ExpiryDate", null=True, blank=True)
    family = models.ForeignKey(Family, models.DO_NOTHING, db_column="FamilyID", related_name="policies")
    officer = models.ForeignKey(Officer, models.DO_NOTHING, db_column="OfficerID", null=True, blank=True)
    product = models.ForeignKey(Product, models.DO_NOTHING, db_column="ProdID", related_name="policies")
    value = models.DecimalField(db_column="PolicyValue", max_digits=18, decimal_places=2, null=True, blank=True)

    class Meta:
        db_table = "tblPolicy"
        verbose_name_plural = "policies"
        indexes = [
            models.Index(fields=["expiry_date"], name="policy_expiry_idx"),
            models.Index(fields=["effective_date"], name="policy_effective_idx"),
            models.Index(fields=["family", "product"], name="policy_family_product_idx"),
            # activation / renewal look for current rows that became valid in the due window
            models.Index(
                fields=["validity_from"], name="policy_current_from_idx", condition=models.Q(validity_to__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"Policy {self.id} ({self.get_status_display()}, {self.start_date} to {self.expiry_date})"


class Language(models.Model):
    code = models.CharField(db_column="LanguageCode", max_length=5, primary_key=True)
    name = models.CharField(db_column="LanguageName", max_length=50)
    sort_order = models.IntegerField(db_column="SortOrder", null=True, blank=True)

    class Meta:
        db_table = "tblLanguages"
        ordering = ["sort_order", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class FamilyNotification(models.Model):
    """Consent to SMS (seed: tblFamilySMS). One row per family; deleting a family retires it (ValidityTo)."""

    family = models.OneToOneField(
        Family, models.DO_NOTHING, db_column="FamilyID", primary_key=True, related_name="notification"
    )
    approval_of_sms = models.BooleanField(db_column="ApprovalOfSMS", default=False)
    language_of_sms = models.CharField(db_column="LanguageOfSMS", max_length=5)
    validity_from = models.DateTimeField(db_column="ValidityFrom", default=timezone.now)
    validity_to = models.DateTimeField(db_column="ValidityTo", null=True, blank=True)

    class Meta:
        db_table = "tblFamilySMS"

    def __str__(self) -> str:
        return (
            f"Family {self.family_id}: {'approved' if self.approval_of_sms else 'no approval'} ({self.language_of_sms})"
        )


# --- The notifier's own tables ------------------------------------------------------------------------------


class FamilyPhone(models.Model):
    """The phone a family is texted on, by the sender's rule (head first, then members by id; first valid one).

    Derived from tblInsuree by notifier.phones.refresh_family_phones so that eligibility modes, detection and
    the report can filter on "has a valid phone" in SQL. A family without a row has no valid phone.
    """

    family = models.OneToOneField(Family, models.DO_NOTHING, primary_key=True, related_name="sms_phone")
    insuree = models.ForeignKey(Insuree, models.DO_NOTHING, related_name="+")
    phone = models.CharField(max_length=20, help_text="E.164")
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notifier_family_phone"

    def __str__(self) -> str:
        return f"Family {self.family_id}: {self.phone}"


def type_field(**kwargs: Any) -> models.CharField[str, str]:
    return models.CharField(max_length=32, choices=NOTIFICATION_TYPE_CHOICES, **kwargs)


class NotificationTemplate(models.Model):
    """The text a family reads, per (notification type, language). Shipped defaults come from a data migration."""

    notification_type = type_field()
    language = models.ForeignKey(Language, models.PROTECT, related_name="templates")
    text = models.TextField()
    replace_lookalikes = models.BooleanField(
        default=False, help_text="Replace characters that force UCS-2 (curly quotes, NBSP, en dash) on render."
    )
    edited = models.BooleanField(default=False, help_text="Set once an operator edits it; migrations leave it alone.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "notifier_template"
        ordering = ["notification_type", "language"]
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


class ProviderAccount(models.Model):
    """One configured SMS gateway. Enabled accounts are tried in priority order (lowest first)."""

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=64, help_text="Slug of a registered provider class.")
    enabled = models.BooleanField(default=True)
    priority = models.PositiveIntegerField(default=100)
    config = models.JSONField(default=dict, blank=True)
    rate_limit_per_second = models.FloatField(null=True, blank=True, help_text="Empty: the NOTIFIER default.")
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

    policy = models.ForeignKey(Policy, models.DO_NOTHING, related_name="+")
    notification_type = type_field()
    event_date = models.DateField()
    family = models.ForeignKey(Family, models.DO_NOTHING, related_name="+")
    recipient = models.CharField(max_length=20, help_text="E.164")
    language = models.CharField(max_length=5, blank=True)
    text = models.TextField(blank=True)
    encoding = models.CharField(max_length=8, blank=True)
    segments = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
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

    class Meta:
        db_table = "notifier_outbox"
        verbose_name_plural = "outbox"
        constraints = [
            models.UniqueConstraint(fields=["policy", "notification_type"], name="outbox_once_per_policy_type")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_status_due_idx"),
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
        NO_VALID_PHONE = "no_valid_phone", "No valid phone"
        TYPE_DISABLED = "type_disabled", "Type disabled"
        SUPERSEDED_BY_STARTING = "superseded_by_starting", "Superseded by starting"
        TOO_LATE = "too_late", "Event date left the due window"

    policy = models.ForeignKey(Policy, models.DO_NOTHING, related_name="+")
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

    @classmethod
    def begin(cls, run_date: dt.date, notification_types: list[str] | None = None) -> DispatcherRun:
        """Record a run that holds the dispatcher lock, after catching up the derived family phones with insuree
        changes made since the previous run (detection reads them)."""
        from notifier.phones import refresh_changed_family_phones

        previous = cls.objects.order_by("-started_at").values_list("started_at", flat=True).first()
        refresh_changed_family_phones(previous)
        return cls.objects.create(run_date=run_date, notification_types=notification_types or [])


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
