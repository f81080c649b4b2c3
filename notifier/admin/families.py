"""Consent and families: the family page with its consent (edited through the consent service), consent history
with provenance, and the members."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from notifier import services
from notifier.admin.base import (
    READ_ONLY,
    CurrentRowsFilter,
    OpenIMISReadOnlyMixin,
    RefusedActionsMixin,
    VersionedAdmin,
)
from notifier.consent_log import consent_source
from notifier.eligibility import MODE_LABELS, Mode, annotate_eligibility, filter_by_mode, parse_mode
from notifier.models import ConsentChange, Family, FamilyNotification, Insuree, Language
from notifier.openimis.mode import is_attached


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


class ConsentChangeInline(RefusedActionsMixin, admin.TabularInline):  # type: ignore[type-arg]
    """Consent history with its provenance (read-only): who or what changed it, and how."""

    refused = frozenset({"add"})
    model = ConsentChange
    fk_name = "family"
    fields = ["changed_at", "action", "approval", "language", "source", "user", "phone", "text", "detail"]
    readonly_fields = ["changed_at", "action", "approval", "language", "source", "user", "phone", "text", "detail"]
    extra = 0
    can_delete = False
    verbose_name = "consent change"
    verbose_name_plural = "consent history (provenance)"


class InsureeInline(OpenIMISReadOnlyMixin, admin.TabularInline):  # type: ignore[type-arg]
    refused = frozenset({"add"})
    model = Insuree
    fields = ["chf_id", "other_names", "last_name", "head", "phone", "dob"]
    readonly_fields = ["chf_id", "other_names", "last_name", "head", "phone", "dob"]
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Insuree]:
        return super().get_queryset(request).filter(validity_to__isnull=True)


@admin.register(Family)
class FamilyAdmin(VersionedAdmin):
    refused = frozenset({"add"})  # a family is created with its members (one head) through the family service
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

    def refuses(self, action: str, obj: Any = None) -> bool:
        """Attached, the family itself is read-only but its consent inline stays editable: the change view must
        accept a POST (history rows excepted), and save_model leaves the family alone."""
        if action == "change" and is_attached():
            return obj is not None and obj.validity_to is not None
        return super().refuses(action, obj)

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
    refused = frozenset({"add"})  # members are created with their family through the family service
    list_display = ["chf_id", "other_names", "last_name", "head", "phone", "family", "validity_to"]
    list_filter = ["head", CurrentRowsFilter]
    search_fields = ["chf_id", "last_name", "other_names", "phone"]
    readonly_fields = ["uuid", "family", "head"]

    def save_model(self, request: HttpRequest, obj: Insuree, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        """Through the family service: history row, and the family's phone follows (signal)."""
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.INSUREE_FIELDS}
        if changes:
            services.update_insuree(obj.uuid, changes)


@admin.register(ConsentChange)
class ConsentChangeAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Every consent change with its provenance; written only by the consent service."""

    refused = READ_ONLY
    list_display = ["changed_at", "family", "action", "approval", "language", "source", "user", "phone", "text"]
    list_filter = ["source", "action", "approval"]
    search_fields = ["phone", "text", "family__head_insuree__chf_id"]
    raw_id_fields = ["family"]
    list_select_related = ["family__head_insuree", "user"]
