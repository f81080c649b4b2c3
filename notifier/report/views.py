"""GET /api/policy_notification/communication_by_notification_report/ — the report as JSON, CSV or PDF.

Anonymous callers are redirected to the report sign-in page (below; it lets non-staff users in, and browsers
come back here); API clients send `Authorization: Token <key>` (401 when it is wrong). A user
without every configured right gets 403; bad parameters get 400 with the parameter named.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from notifier.models import ReportFile
from notifier.report import files as report_files
from notifier.report.access import missing_rights, report_user_required
from notifier.report.admin import ReportForm
from notifier.report.pdf import render_report_pdf
from notifier.report.query import (
    FIELDS,
    FORMATS,
    ReportParamError,
    ReportParams,
    ReportRow,
    build_report,
    report_queryset,
)


def _error(status: int, message: str, param: str | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if param is not None:
        body["param"] = param
    return JsonResponse(body, status=status)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def report_csv(rows: list[ReportRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for row in rows:
        values = row.as_dict()
        writer.writerow([_csv_value(values[name]) for name in FIELDS])
    return buffer.getvalue()


def report_json(params: ReportParams, rows: list[ReportRow], generated_on: dt.date) -> dict[str, Any]:
    officer = params.officer
    return {
        "location": {
            "uuid": str(params.area.uuid),
            "type": params.area.type,
            "code": params.area.code,
            "name": params.area.name,
        },
        "officer": None
        if officer is None
        else {"uuid": str(officer.uuid), "code": officer.code, "name": f"{officer.other_names} {officer.last_name}"},
        "mode": int(params.mode),
        "modeLabel": params.mode_label,
        "date": generated_on.isoformat(),
        "count": len(rows),
        "rows": [row.as_dict() for row in rows],
    }


def _attachment(content: bytes | str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@report_user_required
def communication_by_notification_report(request: HttpRequest) -> HttpResponse:
    lacking = missing_rights(request.user)
    if lacking:
        return _error(403, f"missing report right(s): {', '.join(lacking)}")
    output = (request.GET.get("format") or "json").strip().lower()
    if output not in FORMATS:
        return _error(400, f"format: must be one of {', '.join(FORMATS)}, got {output!r}", "format")
    try:
        params = ReportParams.from_query(request.GET)
    except ReportParamError as exc:
        return _error(400, str(exc), exc.param)
    if output == "pdf" or report_queryset(params).count() > report_files.async_threshold():
        return _start_report_file(request, output)
    rows = build_report(params)
    today = timezone.localdate()
    area_code = re.sub(r"[^A-Za-z0-9_-]", "_", params.area.code or str(params.area.pk))
    filename = f"family_policy_notification_report_{area_code}_{today.isoformat()}"
    if output == "csv":
        return _attachment(report_csv(rows), "text/csv; charset=utf-8", f"{filename}.csv")
    if output == "pdf":
        return _attachment(render_report_pdf(params, rows, today), "application/pdf", f"{filename}.pdf")
    return JsonResponse(report_json(params, rows, today))


# --- big reports: produced by a worker ------------------------------------------------------------------------


def _wants_html(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept.split(",")[0]


def _urls(report: ReportFile) -> tuple[str, str]:
    status = reverse("notifier:report_file", args=[report.uuid])
    return status, reverse("notifier:report_file_download", args=[report.uuid])


def _start_report_file(request: HttpRequest, output: str) -> HttpResponse:
    from notifier.operator_tasks import build_report_file

    report = ReportFile.objects.create(
        requested_by=request.user if request.user.is_authenticated else None,
        query={key: value for key, value in request.GET.items() if key != "format"},
        format=output,
    )
    transaction.on_commit(lambda: build_report_file.delay(report.pk))
    status_url, download_url = _urls(report)
    if _wants_html(request):
        return HttpResponseRedirect(status_url, status=303)
    report.refresh_from_db()  # in the embedded mode the task has already run
    response = JsonResponse(report_files.status_body(report, status_url, download_url), status=202)
    response["Location"] = status_url
    return response


def _own_report(request: HttpRequest, key: str) -> ReportFile:
    lacking = missing_rights(request.user)
    report = ReportFile.objects.filter(uuid=key).first()
    if lacking or report is None:
        raise Http404("no such report")
    if not request.user.is_superuser and report.requested_by_id != request.user.pk:
        raise Http404("no such report")
    return report


@require_GET
@login_required
def report_file(request: HttpRequest, key: str) -> HttpResponse:
    """A report being produced: JSON for API clients, a page that reloads itself for browsers."""
    report = _own_report(request, key)
    status_url, download_url = _urls(report)
    if not _wants_html(request):
        return JsonResponse(report_files.status_body(report, status_url, download_url))
    context = {"report": report, "download_url": download_url, "title": "Family policy notification report"}
    return TemplateResponse(request, "notifier/report_file.html", context)


@require_GET
@login_required
def report_file_download(request: HttpRequest, key: str) -> HttpResponse | FileResponse:
    report = _own_report(request, key)
    path = report_files.file_path(report)
    if report.status != ReportFile.Status.DONE or not path.is_file():
        return _error(409, f"report {report.uuid}: {report.get_status_display().lower()}, no file to download")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=report.file_name,
        content_type=report_files.CONTENT_TYPES[report.format],
    )


# --- people: sign in, sign out, the report form outside the admin ---------------------------------------------


class ReportLoginView(LoginView):
    """The admin's sign-in form without its staff-only rule: any active user may sign in here."""

    template_name = "notifier/report_login.html"
    redirect_authenticated_user = True
    next_page = "notifier:report_page"
    extra_context = {"title": "Sign in: family policy notification report"}


def report_logout(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(
            "Sign out with POST (the button on the report page).", status=405, headers={"Allow": "POST"}
        )
    logout(request)
    return HttpResponseRedirect(reverse("notifier:report_login"))


@require_GET
@report_user_required
def report_page(request: HttpRequest) -> HttpResponse:
    """The report form for signed-in users, staff or not; it hands over to the report endpoint."""
    lacking = missing_rights(request.user)
    if lacking:
        context: dict[str, Any] = {"title": "Report", "lacking": lacking, "user": request.user}
        return TemplateResponse(request, "notifier/report_page.html", context, status=403)
    form = ReportForm(request.GET if "mode" in request.GET else None)
    if form.is_bound and form.is_valid():
        url = reverse("notifier:communication_by_notification_report")
        return HttpResponseRedirect(f"{url}?{form.report_query()}")
    context = {"title": "Family policy notification report", "form": form, "user": request.user}
    return TemplateResponse(request, "notifier/report_page.html", context)
