"""Admin for scheme staff: families with consent, the openIMIS mirror (read-mostly), and the notifier's tables."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from notifier import coordination, delivery, humanize, rendering, services, sms, types
from notifier.consent_log import consent_source
from notifier.eligibility import MODE_LABELS, Mode, annotate_eligibility, filter_by_mode, parse_mode
from notifier.models import (
    ApiToken,
    ConsentChange,
    Decision,
    DeliveryAttempt,
    DetectionRun,
    DispatcherRun,
    FakeGatewayMessage,
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
    ReportFile,
    new_callback_token,
)
from notifier.openimis.mode import is_attached
from notifier.phones import normalize_phone
from notifier.providers.base import MASK, Provider, ProviderConfigError
from notifier.providers.registry import UnknownProviderError, get_provider, provider_classes
from notifier.safe_input import check_text, first_message, parse_json
from notifier.settings import get_settings


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
        try:
            return filter_by_mode(queryset, parse_mode(value))
        except ValidationError as exc:  # the changelist answers "?e=1" instead of a server error
            raise IncorrectLookupParameters(exc) from exc


class OpenIMISReadOnlyMixin:
    """Attached to an openIMIS database (OPENIMIS_MODE=attached), openIMIS rows are shown, never added, changed
    or deleted here: openIMIS owns them."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        if is_attached():
            return False
        return bool(super().has_add_permission(request, *args))  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if is_attached():
            return False
        return bool(super().has_change_permission(request, obj))  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if is_attached():
            return False
        return bool(super().has_delete_permission(request, obj))  # type: ignore[misc]


class VersionedAdmin(OpenIMISReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """openIMIS versioning for admin edits (SPEC §2): a change keeps the old values in a history row, a delete
    closes the row's validity, and history rows themselves are read-only. Attached: all read-only."""

    versioning_fields = ["validity_from", "validity_to", "legacy_id"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        declared = list(super().get_readonly_fields(request, obj))
        return declared + [name for name in self.versioning_fields if name not in declared]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.validity_to is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.validity_to is not None:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if change and form.has_changed():
            obj.save_history()
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        obj.retire()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queryset.filter(validity_to__isnull=True).update(validity_to=timezone.now())


class FamilyNotificationFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    def save(self, commit: bool = True) -> list[Any]:
        """Consent edits go through the consent service (validation, defaults) rather than straight to the row."""
        saved = []
        # The admin's change message reads these, as set by BaseModelFormSet.save().
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        for form in self.forms:
            if not form.has_changed() or not form.cleaned_data:
                continue
            is_new = form.instance._state.adding
            data = {
                "approvalOfNotification": bool(form.cleaned_data.get("approval_of_sms")),
                "languageOfNotification": form.cleaned_data.get("language_of_sms"),
            }
            row = services.update_family_notification_policy(self.instance.uuid, data)
            if is_new:
                self.new_objects.append(row)
            else:
                self.changed_objects.append((row, form.changed_data))
            saved.append(row)
        return saved


class FamilyNotificationForm(forms.ModelForm):  # type: ignore[type-arg]
    """Languages offered from tblLanguages, so an unknown code is a form error, not a failure in the service."""

    # openIMIS allows NULL in ApprovalOfSMS (read as "no approval"); the form offers a plain checkbox.
    approval_of_sms = forms.BooleanField(label="Approval of SMS", required=False)
    language_of_sms = forms.ChoiceField(label="Language of SMS", choices=[])

    class Meta:
        model = FamilyNotification
        fields = ["approval_of_sms", "language_of_sms"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(language.code, str(language)) for language in Language.objects.all()]
        field = self.fields["language_of_sms"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices
        if not self.instance.language_of_sms:
            field.initial = services.default_language_code()


class FamilyNotificationInline(admin.StackedInline):  # type: ignore[type-arg]
    model = FamilyNotification
    form = FamilyNotificationForm
    formset = FamilyNotificationFormSet
    fields = ["approval_of_sms", "language_of_sms", "validity_from", "validity_to"]
    readonly_fields = ["validity_from", "validity_to"]
    can_delete = False
    extra = 0
    max_num = 1

    def get_queryset(self, request: HttpRequest) -> QuerySet[FamilyNotification]:
        """The current consent only: attached, tblFamilySMS keeps history rows under the same FamilyID."""
        return super().get_queryset(request).filter(validity_to__isnull=True)


class ConsentChangeInline(admin.TabularInline):  # type: ignore[type-arg]
    """Consent history with its provenance (read-only): who or what changed it, and how."""

    model = ConsentChange
    fk_name = "family"
    fields = ["changed_at", "action", "approval", "language", "source", "user", "phone", "text", "detail"]
    readonly_fields = ["changed_at", "action", "approval", "language", "source", "user", "phone", "text", "detail"]
    extra = 0
    can_delete = False
    verbose_name = "consent change"
    verbose_name_plural = "consent history (provenance)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InsureeInline(OpenIMISReadOnlyMixin, admin.TabularInline):  # type: ignore[type-arg]
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
class FamilyAdmin(VersionedAdmin):
    list_display = ["id", "uuid", "head_chf_id", "head_name", "location", "approved", "has_phone", "validity_to"]
    list_filter = [EligibilityModeFilter, CurrentRowsFilter]
    search_fields = ["uuid", "head_insuree__chf_id", "head_insuree__last_name", "head_insuree__other_names"]
    list_select_related = ["head_insuree", "location"]
    raw_id_fields = ["location"]
    readonly_fields = ["uuid", "head_insuree"]
    inlines = [FamilyNotificationInline, ConsentChangeInline, InsureeInline]

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: Any, change: bool) -> None:  # type: ignore[type-arg]
        with consent_source(ConsentChange.Source.ADMIN, user=request.user):
            super().save_formset(request, form, formset, change)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Family]:
        return annotate_eligibility(super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        """A family is created with its members (one head) through the family service; this form has no members."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Attached, the family itself is read-only but its consent inline stays editable: the change view must
        accept a POST, and save_model leaves the family alone."""
        if is_attached():
            if obj is not None and obj.validity_to is not None:
                return False
            return admin.ModelAdmin.has_change_permission(self, request, obj)
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if is_attached():
            return ["uuid", "head_insuree", "location", *self.versioning_fields]
        return super().get_readonly_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: Family, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if is_attached():
            return  # openIMIS's row; only the consent inline is saved (through the consent services)
        services.update_family(obj.uuid, location=obj.location)

    def delete_model(self, request: HttpRequest, obj: Family) -> None:
        services.delete_family(obj.uuid)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Family]) -> None:
        for family_uuid in queryset.filter(validity_to__isnull=True).values_list("uuid", flat=True):
            services.delete_family(family_uuid)

    @admin.display(description="Head CHFID", ordering="head_insuree__chf_id")
    def head_chf_id(self, family: Family) -> str:
        return (family.head_insuree.chf_id or "") if family.head_insuree else "—"

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
class InsureeAdmin(VersionedAdmin):
    list_display = ["chf_id", "other_names", "last_name", "head", "phone", "family", "validity_to"]
    list_filter = ["head", CurrentRowsFilter]
    search_fields = ["chf_id", "last_name", "other_names", "phone"]
    readonly_fields = ["uuid", "family", "head"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Members are created with their family through the family service."""
        return False

    def save_model(self, request: HttpRequest, obj: Insuree, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        """Through the family service: history row, and the family's phone follows (signal)."""
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.INSUREE_FIELDS}
        if changes:
            services.update_insuree(obj.uuid, changes)


@admin.register(Policy)
class PolicyAdmin(VersionedAdmin):
    list_display = ["id", "family", "product", "stage", "status", "start_date", "effective_date", "expiry_date"]
    list_filter = ["status", "stage", "product", CurrentRowsFilter]
    search_fields = ["uuid", "family__head_insuree__chf_id", "family__head_insuree__last_name"]
    list_select_related = ["product", "family"]
    raw_id_fields = ["family", "officer", "product"]
    date_hierarchy = "expiry_date"


@admin.register(Product)
class ProductAdmin(VersionedAdmin):
    list_display = ["code", "name", "conversion_product", "validity_to"]
    list_filter = [CurrentRowsFilter]
    search_fields = ["code", "name"]


@admin.register(Location)
class LocationAdmin(VersionedAdmin):
    list_display = ["code", "name", "type", "parent", "validity_to"]
    list_filter = ["type", CurrentRowsFilter]
    search_fields = ["code", "name", "uuid"]
    raw_id_fields = ["parent"]


@admin.register(Officer)
class OfficerAdmin(VersionedAdmin):
    list_display = ["code", "other_names", "last_name", "phone", "location", "validity_to"]
    list_filter = [CurrentRowsFilter]
    search_fields = ["code", "last_name", "other_names", "uuid"]
    raw_id_fields = ["location"]


@admin.register(Language)
class LanguageAdmin(OpenIMISReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["code", "name", "sort_order"]
    search_fields = ["code", "name"]


PREVIEW_TEXT_MAX = 2000


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
    ordering = ["notification_type", "language_id"]
    fields = [
        "notification_type",
        "language",
        "text",
        "late_text",
        "replace_lookalikes",
        "edited",
        "sms_report",
        "updated_at",
    ]
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
        if not change or "text" in form.changed_data or "late_text" in form.changed_data:
            obj.edited = True  # the shipped-defaults migration must leave an operator's text alone
        super().save_model(request, obj, form, change)
        report = self._report(obj)
        if report.ucs2_forcing and not obj.replace_lookalikes:
            self.message_user(
                request,
                f"{obj}: forces UCS-2 ({rendering.describe_chars(report.ucs2_forcing)}): one SMS then holds 70 "
                f"characters instead of 160, so this text costs {report.worst_case_segments} segment(s) per family. "
                "Replace those characters or tick 'replace lookalikes'.",
                messages.WARNING,
            )

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
        reference = request.GET.get("family", "")
        try:  # what PostgreSQL would refuse (NUL, invalid Unicode, over-long) is a 400 naming the parameter
            check_text("text", text, PREVIEW_TEXT_MAX)
            check_text("language", language, 20)
            check_text("family", reference, 50)
        except ValidationError as exc:
            field, message = first_message(exc)
            return JsonResponse({"family": "", "error": f"{field}: {message}", "field": field}, status=400)
        if not Language.objects.filter(pk=language).exists():
            language = "en"
        replace = request.GET.get("replace_lookalikes", "") in {"1", "true", "on"}
        answer: dict[str, Any] = {"family": "", "error": ""}
        try:
            rendering.validate_template(text)
            family = rendering.find_family(reference)
            if reference.strip() and family is None:
                raise rendering.RenderError(f"family: no current family with head CHFID or id {reference.strip()!r}")
            answer["family"] = str(family) if family else "sample values"
            values = rendering.preview_values(family)
            message = rendering.fill(text, values, language)
            # Both wordings: on the event day, and sent later (the late variant, or the same text without one).
            late_text = request.GET.get("late_text", "")
            if late_text.strip():
                try:
                    rendering.validate_template(late_text)
                except rendering.TemplateError as exc:
                    raise rendering.RenderError(f"late_text: {exc}") from None
            late = rendering.fill(late_text, values, language) if late_text.strip() else message
            answer["late_text"] = sms.replace_lookalikes(late) if replace else late
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


class ProviderAccountForm(forms.ModelForm):  # type: ignore[type-arg]
    """Config edited as JSON, validated by the provider's typed config; secrets shown back masked."""

    provider = forms.ChoiceField()
    config = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "cols": 90}), required=False)

    class Meta:
        model = ProviderAccount
        fields = [
            "name",
            "provider",
            "enabled",
            "priority",
            "rate_limit_per_second",
            "price_per_segment",
            "currency",
            "config",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider_field = self.fields["provider"]
        assert isinstance(provider_field, forms.ChoiceField)
        provider_field.choices = [(slug, cls.label or slug) for slug, cls in provider_classes().items()]
        if self.instance.pk and not self.is_bound:
            try:
                shown = get_provider(self.instance.provider).masked(self.instance.config or {})
            except UnknownProviderError:
                shown = {}
            self.initial["config"] = json.dumps(shown, indent=2, ensure_ascii=False)

    def clean_rate_limit_per_second(self) -> float | None:
        value: float | None = self.cleaned_data.get("rate_limit_per_second")
        if value is not None and value <= 0:
            raise forms.ValidationError("must be more than 0 messages per second (empty: the NOTIFIER default)")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        slug = cleaned.get("provider")
        if not slug:
            return cleaned
        text = (cleaned.get("config") or "").strip() or "{}"
        try:
            submitted = parse_json(text, "config")
        except ValidationError as exc:
            self.add_error("config", first_message(exc)[1])
            return cleaned
        cls = get_provider(slug)
        if not isinstance(submitted, dict):
            self.add_error("config", "must be a JSON object")
            return cleaned
        stored = self.instance.config if self.instance.pk and self.instance.provider == slug else {}
        try:
            config = cls.parse_config(cls.unmask(submitted, stored or {}))
        except ProviderConfigError as exc:
            self.add_error("config", str(exc))
            return cleaned
        kept = secrets_kept_for_a_new_address(cls, submitted, stored or {}, config.model_dump(mode="json"))
        if kept:
            self.add_error("config", kept)
            return cleaned
        cleaned["config"] = config.model_dump(mode="json")
        return cleaned


def secrets_kept_for_a_new_address(
    cls: type[Provider], submitted: dict[str, Any], stored: dict[str, Any], new: dict[str, Any]
) -> str:
    """An error when an address field (URL, host) changes while a stored secret is kept masked: the stored secret
    must never reach a host it was not given for, so the person re-enters it. Empty when all is well."""
    if not stored:
        return ""
    try:
        before = cls.parse_config(stored).model_dump(mode="json")  # defaults filled in, as `new` has them
    except ProviderConfigError:
        before = stored
    changed = [name for name in cls.config_class.address_fields if new.get(name) != before.get(name)]
    masked = [name for name in cls.config_class.secret_fields if submitted.get(name) == MASK and stored.get(name)]
    if not changed or not masked:
        return ""
    return (
        f"{', '.join(masked)}: re-enter the secret — {', '.join(changed)} changed, and a stored secret is never "
        "sent to a new address (replace the mask with the secret for the new address)"
    )


class SendTestForm(forms.Form):
    phone = forms.CharField(max_length=50, help_text="Any format; normalised with the scheme's default region.")
    text = forms.CharField(max_length=459, initial="Test message from the policy notification service.")

    def clean_phone(self) -> str:
        recipient = normalize_phone(self.cleaned_data["phone"])
        if recipient is None:
            raise forms.ValidationError("not a valid phone number")
        return recipient


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ProviderAccountForm
    list_display = ["name", "provider", "enabled", "priority", "rate_limit_per_second", "price", "breaker"]
    list_editable = ["enabled", "priority"]
    list_filter = ["provider", "enabled"]
    ordering = ["priority", "id"]
    readonly_fields = ["breaker", "send_test_link", "callback_urls"]
    actions = ["send_test_message", "renew_callback_urls"]

    @admin.action(description="Give new callback URLs (the old receipt and inbound URLs stop working)")
    def renew_callback_urls(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        count = 0
        for account in queryset:
            account.callback_token = new_callback_token()
            account.save(update_fields=["callback_token", "updated_at"])
            count += 1
        self.message_user(request, f"{count} account(s) have new callback URLs; enter them in the gateway's dashboard.")

    @admin.display(description="Gateway callback URLs")
    def callback_urls(self, account: ProviderAccount) -> str:
        """What to enter in the gateway's dashboard (the token in them is this account's secret)."""
        if not account.pk:
            return "Save the account first."
        base = get_settings().public_url or "https://<this service>"
        receipts = base + reverse("notifier:receipt", args=[account.callback_token])
        inbound = base + reverse("notifier:inbound", args=[account.callback_token])
        return format_html(
            "Delivery receipts: <code>{}</code><br>Inbound messages (STOP): <code>{}</code>", receipts, inbound
        )

    @admin.display(description="Circuit breaker")
    def breaker(self, account: ProviderAccount) -> str:
        if not account.pk:
            return "—"
        state = coordination.breaker_state(account.pk)
        return format_html('<span class="badge breaker-{}">{}</span>', state, state)

    @admin.display(description="Price / segment", ordering="price_per_segment")
    def price(self, account: ProviderAccount) -> str:
        if account.price_per_segment is None:
            return "—"
        return f"{account.price_per_segment} {account.currency}"

    @admin.display(description="Test")
    def send_test_link(self, account: ProviderAccount) -> str:
        if not account.pk:
            return "Save the account first."
        url = reverse("admin:notifier_provideraccount_send_test", args=[account.pk])
        return format_html('<a class="button" href="{}">Send a test message</a>', url)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.send_test_view)
        own = [path("<int:account_id>/send-test/", view, name="notifier_provideraccount_send_test")]
        return own + super().get_urls()

    @admin.action(description="Send a test message (one account)")
    def send_test_message(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> HttpResponse | None:
        accounts = list(queryset[:2])
        if len(accounts) != 1:
            self.message_user(request, "Select exactly one account to test.", messages.WARNING)
            return None
        return redirect("admin:notifier_provideraccount_send_test", accounts[0].pk)

    def send_test_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = get_object_or_404(ProviderAccount, pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = SendTestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            outcome = delivery.send_test_message(account, form.cleaned_data["phone"], form.cleaned_data["text"])
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.ok else messages.ERROR)
            if outcome.ok:
                return redirect("admin:notifier_provideraccount_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Send a test message through {account}",
            "account": account,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/notifier/provideraccount/send_test.html", context)


class OutboxProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(slug, cls.label or slug) for slug, cls in provider_classes().items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(provider_account__provider=value) if value else queryset


@admin.register(Outbox)
class OutboxAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the outbox row is the exactly-once record: cancel it instead

    @admin.display(description="Type", ordering="notification_type")
    def type_label(self, outbox: Outbox) -> str:
        return types.label(outbox.notification_type)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, outbox: Outbox) -> str:
        return format_html('<span class="badge status-{}">{}</span>', outbox.status, outbox.get_status_display())

    @admin.display(description="Last error")
    def error_excerpt(self, outbox: Outbox) -> str:
        return humanize.plain_excerpt(outbox.last_error, 40) or "—"

    @admin.display(description="Tries", ordering="attempts")
    def tries(self, outbox: Outbox) -> int:
        return outbox.attempts

    @admin.display(description="Queued", ordering="created_at")
    def queued(self, outbox: Outbox) -> str:
        return timezone.localtime(outbox.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Last error")
    def last_error_text(self, outbox: Outbox) -> str:
        return humanize.plain_excerpt(outbox.last_error, 1000) or "—"

    @admin.action(description="Resend (failed, unknown or cancelled)")
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Outbox]) -> None:
        count = delivery.resend(list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} message(s) queued again; the sweeper sends them shortly.")

    @admin.action(description="Cancel (not yet sent)")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Outbox]) -> None:
        count = delivery.cancel(list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} message(s) cancelled.")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Error")
    def error_excerpt(self, attempt: DeliveryAttempt) -> str:
        return humanize.plain_excerpt(attempt.error, 70) or "—"


@admin.register(FakeGatewayMessage)
class FakeGatewayMessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["received_at", "recipients", "sender_id", "message"]
    search_fields = ["recipients", "message"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: detection's record of why a (policy, type) was queued or not."""

    list_display = ["policy", "notification_type", "event_date", "outcome", "reason", "last_evaluated_at"]
    list_filter = ["notification_type", "outcome", "reason"]
    search_fields = ["policy__uuid", "policy__family__head_insuree__chf_id"]
    raw_id_fields = ["policy"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DetectionRun)
class DetectionRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: the catch-up watermark of detection."""

    list_display = ["notification_type", "run_date", "window_start", "window_end", "queued", "skipped", "completed_at"]
    list_filter = ["notification_type"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DispatcherRun)
class DispatcherRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: the beat heartbeat the health check reads."""

    list_display = ["run_date", "started_at", "completed_at", "notification_types", "error"]
    date_hierarchy = "started_at"
    readonly_fields = ["run_date", "started_at", "completed_at", "notification_types", "error"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReportFile)
class ReportFileAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Reports produced by a worker: progress, then the download while the file is kept."""

    list_display = ["created_at", "format", "area", "status_badge", "progress_percent", "families", "download"]
    list_filter = ["status", "format"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReportFile]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser or request.user.has_perm("notifier.view_reportfile"):
            return queryset
        return queryset.filter(requested_by=request.user.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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


from notifier import report_admin  # noqa: E402, F401 - registers the report page


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Tokens are created by `manage.py api_token create USER` (the key is shown once); here they are listed and
    revoked (deleted)."""

    list_display = ["prefix", "user", "name", "created_at", "last_used_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "prefix", "digest", "created_at", "last_used_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ConsentChange)
class ConsentChangeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every consent change with its provenance; written only by the consent service."""

    list_display = ["changed_at", "family", "action", "approval", "language", "source", "user", "phone", "text"]
    list_filter = ["source", "action", "approval"]
    search_fields = ["phone", "text", "family__head_insuree__chf_id"]
    raw_id_fields = ["family"]
    list_select_related = ["family__head_insuree", "user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
