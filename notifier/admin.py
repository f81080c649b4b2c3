"""Admin for scheme staff: families with consent, the openIMIS mirror (read-mostly), and the notifier's tables."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path

from notifier import rendering, services, sms
from notifier.eligibility import MODE_LABELS, Mode, annotate_eligibility, filter_by_mode
from notifier.models import (
    Decision,
    DeliveryAttempt,
    DetectionRun,
    Family,
    FamilyNotification,
    Insuree,
    Language,
    Location,
    NotificationTemplate,
    Officer,
    Outbox,
    Policy,
    Product,
    ProviderAccount,
)


class CurrentRowsFilter(admin.SimpleListFilter):
    title = "version"
    parameter_name = "version"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("current", "Current rows"), ("history", "History rows")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "current":
            return queryset.filter(validity_to__isnull=True)
        if self.value() == "history":
            return queryset.filter(validity_to__isnull=False)
        return queryset


class EligibilityModeFilter(admin.SimpleListFilter):
    title = "notification eligibility"
    parameter_name = "mode"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(int(mode)), label) for mode, label in MODE_LABELS.items() if mode is not Mode.ALL]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return filter_by_mode(queryset, int(value))


class FamilyNotificationFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    def save(self, commit: bool = True) -> list[Any]:
        """Consent edits go through the consent service (validation, defaults) rather than straight to the row."""
        saved = []
        for form in self.forms:
            if not form.has_changed() or not form.cleaned_data:
                continue
            data = {
                "approvalOfNotification": bool(form.cleaned_data.get("approval_of_sms")),
                "languageOfNotification": form.cleaned_data.get("language_of_sms"),
            }
            saved.append(services.update_family_notification_policy(self.instance.uuid, data))
        return saved


class FamilyNotificationInline(admin.StackedInline):  # type: ignore[type-arg]
    model = FamilyNotification
    formset = FamilyNotificationFormSet
    fields = ["approval_of_sms", "language_of_sms", "validity_from", "validity_to"]
    readonly_fields = ["validity_from", "validity_to"]
    can_delete = False
    extra = 0
    max_num = 1


class InsureeInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Insuree
    fields = ["chf_id", "other_names", "last_name", "head", "phone", "dob"]
    readonly_fields = ["chf_id", "other_names", "last_name", "head", "phone", "dob"]
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Insuree]:
        return super().get_queryset(request).filter(validity_to__isnull=True)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Family)
class FamilyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "uuid", "head_chf_id", "head_name", "location", "approved", "has_phone", "validity_to"]
    list_filter = [EligibilityModeFilter, CurrentRowsFilter]
    search_fields = ["uuid", "head_insuree__chf_id", "head_insuree__last_name", "head_insuree__other_names"]
    list_select_related = ["head_insuree", "location"]
    raw_id_fields = ["head_insuree", "location"]
    readonly_fields = ["uuid", "validity_from", "validity_to", "legacy_id"]
    inlines = [FamilyNotificationInline, InsureeInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Family]:
        return annotate_eligibility(super().get_queryset(request))

    def save_model(self, request: HttpRequest, obj: Family, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if change:
            services.update_family(obj.uuid, location=obj.location)
        else:
            super().save_model(request, obj, form, change)

    @admin.display(description="Head CHFID", ordering="head_insuree__chf_id")
    def head_chf_id(self, family: Family) -> str:
        return family.head_insuree.chf_id if family.head_insuree else "—"

    @admin.display(description="Head", ordering="head_insuree__last_name")
    def head_name(self, family: Family) -> str:
        head = family.head_insuree
        return f"{head.other_names} {head.last_name}" if head else "—"

    @admin.display(description="SMS approved", boolean=True)
    def approved(self, family: Any) -> bool:
        return bool(family.sms_approved)

    @admin.display(description="Valid phone", boolean=True)
    def has_phone(self, family: Any) -> bool:
        return bool(family.has_valid_phone)


@admin.register(Insuree)
class InsureeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["chf_id", "other_names", "last_name", "head", "phone", "family", "validity_to"]
    list_filter = ["head", CurrentRowsFilter]
    search_fields = ["chf_id", "last_name", "other_names", "phone"]
    raw_id_fields = ["family"]


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "family", "product", "stage", "status", "start_date", "effective_date", "expiry_date"]
    list_filter = ["status", "stage", "product", CurrentRowsFilter]
    search_fields = ["uuid", "family__head_insuree__chf_id", "family__head_insuree__last_name"]
    list_select_related = ["product", "family"]
    raw_id_fields = ["family", "officer", "product"]
    date_hierarchy = "expiry_date"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["code", "name", "conversion_product", "validity_to"]
    list_filter = [CurrentRowsFilter]
    search_fields = ["code", "name"]


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["code", "name", "type", "parent", "validity_to"]
    list_filter = ["type", CurrentRowsFilter]
    search_fields = ["code", "name", "uuid"]
    raw_id_fields = ["parent"]


@admin.register(Officer)
class OfficerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["code", "other_names", "last_name", "phone", "location", "validity_to"]
    list_filter = [CurrentRowsFilter]
    search_fields = ["code", "last_name", "other_names", "uuid"]
    raw_id_fields = ["location"]


@admin.register(Language)
class LanguageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["code", "name", "sort_order"]
    search_fields = ["code", "name"]


@admin.register(NotificationTemplate)
class NotificationTemplateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Templates by type and language, with what the network makes of them and a live preview (SPEC §6, §11)."""

    list_display = [
        "notification_type",
        "language",
        "encoding",
        "worst_case_segments",
        "ucs2_characters",
        "replace_lookalikes",
        "edited",
        "updated_at",
    ]
    list_filter = ["notification_type", "language", "edited"]
    search_fields = ["text"]
    ordering = ["notification_type", "language"]
    fields = ["notification_type", "language", "text", "replace_lookalikes", "edited", "sms_report", "updated_at"]
    readonly_fields = ["sms_report", "updated_at"]
    change_form_template = "admin/notifier/notificationtemplate/change_form.html"

    def _report(self, template: NotificationTemplate) -> rendering.TemplateReport:
        return rendering.template_report(
            template.text, template.language_id or "", replace_lookalikes=template.replace_lookalikes
        )

    @admin.display(description="Encoding")
    def encoding(self, template: NotificationTemplate) -> str:
        report = self._report(template)
        return report.encoding or "invalid"

    @admin.display(description="Worst-case segments")
    def worst_case_segments(self, template: NotificationTemplate) -> int | str:
        report = self._report(template)
        return report.worst_case_segments if not report.error else "—"

    @admin.display(description="Forces UCS-2")
    def ucs2_characters(self, template: NotificationTemplate) -> str:
        return rendering.describe_chars(self._report(template).ucs2_forcing) or "—"

    @admin.display(description="SMS (long sample values)")
    def sms_report(self, template: NotificationTemplate) -> str:
        if not template.pk:
            return "Shown once saved; the preview below is live."
        report = self._report(template)
        if report.error:
            return report.error
        summary = f"{report.encoding}, {report.worst_case_length} characters, {report.worst_case_segments} segment(s)"
        if report.ucs2_forcing:
            summary += f"; forces UCS-2: {rendering.describe_chars(report.ucs2_forcing)}"
        if report.replaceable and not template.replace_lookalikes:
            summary += f" (replaceable on render: {rendering.describe_chars(report.replaceable)})"
        return summary

    def save_model(self, request: HttpRequest, obj: NotificationTemplate, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if not change or "text" in form.changed_data:
            obj.edited = True  # the shipped-defaults migration must leave an operator's text alone
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list[URLPattern]:
        preview = path(
            "preview/", self.admin_site.admin_view(self.preview_view), name="notifier_notificationtemplate_preview"
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """JSON preview of a template text for a family (head CHFID or family id) or, without one, sample values."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        text = request.GET.get("text", "")
        language = request.GET.get("language", "") or "en"
        if not Language.objects.filter(pk=language).exists():
            language = "en"
        replace = request.GET.get("replace_lookalikes", "") in {"1", "true", "on"}
        reference = request.GET.get("family", "")
        answer: dict[str, Any] = {"family": "", "error": ""}
        try:
            rendering.validate_template(text)
            family = rendering.find_family(reference)
            if reference.strip() and family is None:
                raise rendering.RenderError(f"family: no current family with head CHFID or id {reference.strip()!r}")
            answer["family"] = str(family) if family else "sample values"
            message = rendering.fill(text, rendering.preview_values(family), language)
        except ValueError as exc:  # TemplateError and RenderError
            answer["error"] = str(exc)
            return JsonResponse(answer, status=400)
        typed = sms.analyse(message)
        if replace:
            message = sms.replace_lookalikes(message)
        info = sms.analyse(message)
        worst = rendering.template_report(text, language, replace_lookalikes=replace)
        answer.update(
            text=message,
            encoding=info.encoding,
            length=info.length,
            segments=info.segments,
            ucs2_forcing=[sms.describe_char(char) for char in typed.ucs2_forcing],
            replaceable=[sms.describe_char(char) for char in typed.replaceable],
            worst_case={
                "encoding": worst.encoding,
                "length": worst.worst_case_length,
                "segments": worst.worst_case_segments,
            },
        )
        return JsonResponse(answer)


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "provider", "enabled", "priority"]
    list_editable = ["enabled", "priority"]
    list_filter = ["provider", "enabled"]


@admin.register(Outbox)
class OutboxAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "notification_type", "recipient", "status", "attempts", "provider_account", "created_at"]
    list_filter = ["status", "notification_type", "provider_account"]
    search_fields = ["recipient", "family__head_insuree__chf_id"]
    raw_id_fields = ["policy", "family"]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["outbox", "provider", "outcome", "http_status", "duration_ms", "started_at"]
    list_filter = ["outcome", "provider"]
    raw_id_fields = ["outbox"]


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["policy", "notification_type", "event_date", "outcome", "reason", "last_evaluated_at"]
    list_filter = ["notification_type", "outcome", "reason"]
    search_fields = ["policy__uuid", "policy__family__head_insuree__chf_id"]
    raw_id_fields = ["policy"]


@admin.register(DetectionRun)
class DetectionRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["notification_type", "run_date", "window_start", "window_end", "queued", "skipped", "completed_at"]
    list_filter = ["notification_type"]


from notifier import report_admin  # noqa: E402, F401 - registers the report page
