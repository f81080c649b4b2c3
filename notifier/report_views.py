"""GET /api/policy_notification/communication_by_notification_report/ — the report as JSON, CSV or PDF.

Anonymous callers are redirected to the login page (browsers follow it and come back); a signed-in user
without every configured right gets 403; bad parameters get 400 with the parameter named.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from notifier.report import FIELDS, ReportParamError, ReportParams, ReportRow, build_report
from notifier.report_access import missing_rights
from notifier.report_pdf import render_report_pdf

FORMATS = ("json", "csv", "pdf")


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
@login_required
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
    rows = build_report(params)
    today = timezone.localdate()
    area_code = re.sub(r"[^A-Za-z0-9_-]", "_", params.area.code or str(params.area.pk))
    filename = f"family_policy_notification_report_{area_code}_{today.isoformat()}"
    if output == "csv":
        return _attachment(report_csv(rows), "text/csv; charset=utf-8", f"{filename}.csv")
    if output == "pdf":
        return _attachment(render_report_pdf(params, rows, today), "application/pdf", f"{filename}.pdf")
    return JsonResponse(report_json(params, rows, today))
