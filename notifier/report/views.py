"""GET /api/policy_notification/communication_by_notification_report/ — the report as JSON, CSV or PDF.

Anonymous callers are redirected to the report sign-in page (below; it lets non-staff users in, and browsers
come back here); API clients send `Authorization: Token <key>` (401 when it is wrong). A user
without every configured right gets 403; bad parameters get 400 with the parameter named.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from notifier.models import ReportFile
from notifier.operator_tasks import build_report_file
from notifier.report import files as report_files
from notifier.report.access import missing_rights, report_user_required
from notifier.report.admin import ReportForm
from notifier.report.formats import csv_chunks, json_chunks
from notifier.report.query import FORMATS, ReportParamError, ReportParams, open_report


def _error(status: int, message: str, param: str | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if param is not None:
        body["param"] = param
    return JsonResponse(body, status=status)


@require_GET
@report_user_required
def communication_by_notification_report(request: HttpRequest) -> HttpResponseBase:
    """JSON and CSV stream at any size: the query runs (and fails, with a 500) before the response starts, then
    the rows go out as the server-side cursor yields them. A PDF is laid out by a worker (202, files.py)."""
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
    if output == "pdf":
        return _start_report_file(request, output)
    report = open_report(params)
    today = timezone.localdate()
    if output == "csv":
        area_code = re.sub(r"[^A-Za-z0-9_-]", "_", params.area.code or str(params.area.pk))
        response = StreamingHttpResponse(csv_chunks(report.rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="family_policy_notification_report_{area_code}_{today.isoformat()}.csv"'
        )
        return response
    return StreamingHttpResponse(json_chunks(params, report, today), content_type="application/json")


# --- big reports: produced by a worker ------------------------------------------------------------------------


def _wants_html(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept.split(",")[0]


def _urls(report: ReportFile) -> tuple[str, str]:
    status = reverse("notifier:report_file", args=[report.uuid])
    return status, reverse("notifier:report_file_download", args=[report.uuid])


def _start_report_file(request: HttpRequest, output: str) -> HttpResponse:
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
