"""The messages: templates, the provider accounts that send them, the outbox (one row per message, ever) with its
attempt log, and what the built-in fake gateway received."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from notifier.openimis.models import Family, Language, Policy
from notifier.template_syntax import AMOUNT_TYPES, TemplateError, validate_template
from notifier.types import NOTIFICATION_TYPES

NOTIFICATION_TYPE_CHOICES = [(name, name.replace("_", " ").capitalize()) for name in NOTIFICATION_TYPES]


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
        try:
            validate_template(self.text or "")
        except TemplateError as exc:
            raise ValidationError({"text": str(exc)}, code="invalid_template") from None
        if self.late_text:
            try:
                validate_template(self.late_text)
            except TemplateError as exc:
                raise ValidationError({"late_text": str(exc)}, code="invalid_template") from None
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

    # No index of its own on policy_id or provider_account_id: the unique (policy, type) constraint and the
    # (provider account, reference) index lead with them and serve every lookup; each extra index costs every
    # outbox write (the claim and the outcome of each message update indexed columns).
    policy = models.ForeignKey(Policy, models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False)
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
    provider_account = models.ForeignKey(
        ProviderAccount, models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
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
        help_text="When the first provider call of its delivery began: marked just before it with the send marks in "
        "the database, else written with the outcome (the sweeper then reads the run's marks in Redis).",
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
