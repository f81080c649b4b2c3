"""The outbox (the exactly-once record of each message, with resend and cancel), the attempt log, and what the
built-in fake gateway received."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from notifier import humanize, types
from notifier.admin.base import READ_ONLY, RefusedActionsMixin
from notifier.delivery import operator
from notifier.models import DeliveryAttempt, FakeGatewayMessage, Outbox
from notifier.providers.registry import provider_classes


class OutboxProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(slug, cls.label or slug) for slug, cls in provider_classes().items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(provider_account__provider=value) if value else queryset


@admin.register(Outbox)
class OutboxAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    refused = frozenset({"add", "delete"})  # the outbox row is the exactly-once record: cancel it instead
    # What fits beside the navigation and the filters at 1,366 px (the browser test measures it).
    # Provider and tries are a filter and the detail page away.
    list_display = ["id", "type_label", "recipient", "status_badge", "error_excerpt", "queued"]
    list_display_links = ["id", "type_label"]
    list_filter = ["status", "notification_type", OutboxProviderFilter, "provider_account"]
    search_fields = ["recipient", "family__head_insuree__chf_id"]
    list_select_related = ["provider_account"]
    raw_id_fields = ["policy", "family"]
    readonly_fields = [
        "policy",
        "notification_type",
        "event_date",
        "family",
        "recipient",
        "language",
        "text",
        "encoding",
        "segments",
        "status",
        "attempts",
        "next_attempt_at",
        "provider_account",
        "provider_reference",
        "last_error_text",
        "detection_run",
        "created_at",
        "claimed_at",
        "send_started_at",
        "sent_at",
        "requeued_at",
        "receipt_status",
        "receipt_reason",
        "receipt_at",
        "lease_owner",
        "lease_expires_at",
        "enqueued_at",
        "updated_at",
    ]
    exclude = ["last_error"]
    actions = ["resend_selected", "cancel_selected"]

    @admin.display(description="Type", ordering="notification_type")
    def type_label(self, outbox: Outbox) -> str:
        return types.label(outbox.notification_type)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, outbox: Outbox) -> str:
        return format_html('<span class="badge status-{}">{}</span>', outbox.status, outbox.get_status_display())

    @admin.display(description="Last error")
    def error_excerpt(self, outbox: Outbox) -> str:
        return humanize.plain_excerpt(outbox.last_error, 40) or "—"

    @admin.display(description="Queued", ordering="created_at")
    def queued(self, outbox: Outbox) -> str:
        return timezone.localtime(outbox.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Last error")
    def last_error_text(self, outbox: Outbox) -> str:
        return humanize.plain_excerpt(outbox.last_error, 1000) or "—"

    @admin.action(description="Resend (failed, unknown or cancelled)")
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Outbox]) -> None:
        count = operator.resend(list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} message(s) queued again; the sweeper sends them shortly.")

    @admin.action(description="Cancel (not yet sent)")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Outbox]) -> None:
        count = operator.cancel(list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} message(s) cancelled.")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    refused = READ_ONLY
    list_display = [
        "outbox",
        "provider_account",
        "outcome",
        "http_status",
        "error_excerpt",
        "duration_ms",
        "started_at",
    ]
    list_filter = ["outcome", "provider", "provider_account", "outbox__status", "outbox__notification_type"]
    search_fields = ["outbox__recipient", "outbox__family__head_insuree__chf_id"]
    list_select_related = ["outbox", "provider_account"]
    raw_id_fields = ["outbox"]

    @admin.display(description="Error")
    def error_excerpt(self, attempt: DeliveryAttempt) -> str:
        return humanize.plain_excerpt(attempt.error, 70) or "—"


@admin.register(FakeGatewayMessage)
class FakeGatewayMessageAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    refused = frozenset({"add", "change"})
    list_display = ["received_at", "recipients", "sender_id", "message"]
    search_fields = ["recipients", "message"]
