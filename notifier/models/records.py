"""What the service records: detection's decisions and runs, dispatcher runs, the forecast, report files and the
report's permissions, API tokens."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from notifier.models.messages import type_field
from notifier.openimis.models import Policy


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
    """A report produced by a worker (a PDF; JSON and CSV stream from the endpoint): its progress, then its file
    under VAR_DIR/reports until `expires_at` (NOTIFIER_REPORT_KEEP_HOURS), when housekeeping deletes it."""

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
