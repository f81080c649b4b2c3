"""What the service records for operators to read: detection decisions and watermarks, dispatcher runs, report
files, API tokens."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifier.admin.base import READ_ONLY, RefusedActionsMixin
from notifier.models import ApiToken, Decision, DetectionRun, DispatcherRun, ReportFile


@admin.register(Decision)
class DecisionAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: detection's record of why a (policy, type) was queued or not."""

    refused = READ_ONLY
    list_display = ["policy", "notification_type", "event_date", "outcome", "reason", "last_evaluated_at"]
    list_filter = ["notification_type", "outcome", "reason"]
    search_fields = ["policy__uuid", "policy__family__head_insuree__chf_id"]
    raw_id_fields = ["policy"]


@admin.register(DetectionRun)
class DetectionRunAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: the catch-up watermark of detection."""

    refused = READ_ONLY
    list_display = ["notification_type", "run_date", "window_start", "window_end", "queued", "skipped", "completed_at"]
    list_filter = ["notification_type"]


@admin.register(DispatcherRun)
class DispatcherRunAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: the beat heartbeat the health check reads."""

    refused = READ_ONLY
    list_display = ["run_date", "started_at", "completed_at", "notification_types", "error"]
    date_hierarchy = "started_at"
    readonly_fields = ["run_date", "started_at", "completed_at", "notification_types", "error"]


@admin.register(ReportFile)
class ReportFileAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Reports produced by a worker: progress, then the download while the file is kept."""

    refused = frozenset({"add", "change"})
    list_display = ["created_at", "format", "area", "status_badge", "progress_percent", "families", "download"]
    list_filter = ["status", "format"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReportFile]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser or request.user.has_perm("notifier.view_reportfile"):
            return queryset
        return queryset.filter(requested_by=request.user.pk)

    @admin.display(description="Area")
    def area(self, report: ReportFile) -> str:
        query = report.query or {}
        return "district" if query.get("districtUuid") else "region"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, report: ReportFile) -> str:
        return format_html('<span class="badge report-{}">{}</span>', report.status, report.get_status_display())

    @admin.display(description="Progress")
    def progress_percent(self, report: ReportFile) -> str:
        return f"{report.progress}%"

    @admin.display(description="File")
    def download(self, report: ReportFile) -> str:
        url = reverse("notifier:report_file", args=[report.uuid])
        label = report.file_name if report.status == ReportFile.Status.DONE else "progress"
        return format_html('<a href="{}">{}</a>', url, label)


@admin.register(ApiToken)
class ApiTokenAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Tokens are created by `manage.py api_token create USER` (the key is shown once); here they are listed and
    revoked (deleted)."""

    refused = frozenset({"add"})
    list_display = ["prefix", "user", "name", "created_at", "last_used_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "prefix", "digest", "created_at", "last_used_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at"]
