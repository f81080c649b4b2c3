"""Notification templates: what the network makes of a text (encoding, worst-case segments) and the live
preview the change form calls."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path

from notifier import rendering, sms
from notifier.models import Language, NotificationTemplate
from notifier.safe_input import check_text, first_message
from notifier.template_syntax import TemplateError, validate_template

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
            validate_template(text)
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
                    validate_template(late_text)
                except TemplateError as exc:
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
