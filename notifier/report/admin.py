"""The report in the admin: a form that picks region / district / officer / mode / format and hands over to
the report endpoint, which does the validation, the permission check and the rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from notifier.admin.base import READ_ONLY, RefusedActionsMixin
from notifier.eligibility import MODE_LABELS, Mode
from notifier.models import Location, NotificationReport, Officer
from notifier.report.access import missing_rights
from notifier.report.query import FORMATS


class ReportForm(forms.Form):
    district = forms.ModelChoiceField(
        queryset=Location.objects.current().filter(type=Location.Type.DISTRICT).order_by("code"),
        to_field_name="uuid",
        required=False,
        help_text="Wins over the region when both are picked.",
    )
    region = forms.ModelChoiceField(
        queryset=Location.objects.current().filter(type=Location.Type.REGION).order_by("code"),
        to_field_name="uuid",
        required=False,
    )
    officer = forms.ModelChoiceField(
        queryset=Officer.objects.current().order_by("code"),
        to_field_name="uuid",
        required=False,
        label="Enrolment officer",
        help_text="Only families holding a current policy of this officer.",
    )
    mode = forms.TypedChoiceField(
        choices=[(int(mode), f"{int(mode)} {label}") for mode, label in MODE_LABELS.items()],
        coerce=int,
        initial=int(Mode.ALL),
    )
    format = forms.ChoiceField(choices=[(name, name.upper()) for name in reversed(FORMATS)], initial="pdf")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("district") and not cleaned.get("region"):
            raise forms.ValidationError("Pick a district or a region.")
        return cleaned

    def report_query(self) -> str:
        cleaned = self.cleaned_data
        query: dict[str, str] = {"mode": str(cleaned["mode"]), "format": cleaned["format"]}
        if cleaned.get("district"):
            query["districtUuid"] = str(cleaned["district"].uuid)
        if cleaned.get("region"):
            query["regionUuid"] = str(cleaned["region"].uuid)
        if cleaned.get("officer"):
            query["officerUuid"] = str(cleaned["officer"].uuid)
        return urlencode(query)


@admin.register(NotificationReport)
class NotificationReportAdmin(RefusedActionsMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    refused = READ_ONLY

    def _may_report(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff) and not missing_rights(user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_report(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_report(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self._may_report(request):
            return HttpResponse("You lack the rights for this report.", status=403)
        form = ReportForm(request.GET if "mode" in request.GET else None)
        if form.is_bound and form.is_valid():
            url = reverse("notifier:communication_by_notification_report")
            return HttpResponseRedirect(f"{url}?{form.report_query()}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Family policy notification report",
            "opts": self.opts,
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/notifier/report_form.html", context)
