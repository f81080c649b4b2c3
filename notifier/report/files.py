"""PDF reports never time out: a Celery task lays the PDF out into a file under VAR_DIR/reports, with its
progress in the database, a village at a time as the rows come from the cursor (memory does not grow with the
area). JSON and CSV stream straight from the endpoint at any size; a JSON/CSV row queued here by an earlier
version (which sent those above NOTIFIER_REPORT_ASYNC_FAMILIES families to a worker) is still written, streamed.

The endpoint answers 202 with a status URL (API clients poll it); the admin shows a progress page that reloads
itself and offers the download when ready. Files are kept NOTIFIER_REPORT_KEEP_HOURS (24), then housekeeping
(`notifier.tasks.operator_housekeeping`, hourly) deletes them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from notifier.models import ReportFile
from notifier.report.formats import csv_chunks, json_chunks
from notifier.report.pdf import render_report_pdf
from notifier.report.query import ReportParams, open_report
from notifier.settings import get_settings

logger = logging.getLogger(__name__)
CONTENT_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8", "json": "application/json"}


def reports_dir() -> Path:
    path = Path(settings.VAR_DIR) / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_path(report: ReportFile) -> Path:
    return reports_dir() / f"{report.uuid}.{report.format}"


def file_name(params: ReportParams, output: str, day: dt.date) -> str:
    area_code = re.sub(r"[^A-Za-z0-9_-]", "_", params.area.code or "area")
    return f"family_policy_notification_report_{area_code}_{day.isoformat()}.{output}"


class _Progress:
    """Writes the percentage at most every second (and only when it moved)."""

    def __init__(self, report: ReportFile, start: int, end: int) -> None:
        self.report, self.start, self.end = report, start, end
        self.last_write = 0.0
        self.last_value = -1

    def __call__(self, fraction: float) -> None:
        value = self.start + int((self.end - self.start) * max(0.0, min(fraction, 1.0)))
        now = time.monotonic()
        if value != self.last_value and now - self.last_write >= 1.0:
            ReportFile.objects.filter(pk=self.report.pk).update(progress=value)
            self.last_write, self.last_value = now, value


def produce(report_id: int) -> ReportFile:
    """Build the report's file. Idempotent: a file already done or failed is left as it is."""
    report = ReportFile.objects.get(pk=report_id)
    if report.status in {ReportFile.Status.DONE, ReportFile.Status.FAILED}:
        return report
    ReportFile.objects.filter(pk=report.pk).update(status=ReportFile.Status.RUNNING, progress=1)
    target = file_path(report)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        params = ReportParams.from_query(report.query)
        # Not in a transaction of its own: the progress written while the rows are read must be seen as it goes.
        opened = open_report(params, own_transaction=False)
        ReportFile.objects.filter(pk=report.pk).update(progress=10, families=opened.count)
        today = timezone.localdate()
        with partial.open("wb") as handle:
            if report.format == "pdf":
                render_report_pdf(params, opened, today, output=handle, progress=_Progress(report, 10, 99))
            else:
                chunks = csv_chunks(opened.rows) if report.format == "csv" else json_chunks(params, opened, today)
                handle.writelines(chunk.encode("utf-8") for chunk in chunks)
        partial.replace(target)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        logger.exception("report %s failed", report.uuid)
        ReportFile.objects.filter(pk=report.pk).update(
            status=ReportFile.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        report.refresh_from_db()
        return report
    now = timezone.now()
    ReportFile.objects.filter(pk=report.pk).update(
        status=ReportFile.Status.DONE,
        progress=100,
        file_name=file_name(params, report.format, timezone.localdate()),
        size_bytes=target.stat().st_size,
        finished_at=now,
        expires_at=now + dt.timedelta(hours=get_settings().report_keep_hours),
    )
    report.refresh_from_db()
    return report


def clean_expired(now: dt.datetime | None = None) -> int:
    """Delete the files (and rows) of reports past their keeping time, and failed ones older than it."""
    now = now or timezone.now()
    expired = ReportFile.objects.filter(
        Q(expires_at__lt=now)
        | Q(expires_at__isnull=True, created_at__lt=now - dt.timedelta(hours=get_settings().report_keep_hours))
    )
    count = 0
    for report in expired:
        file_path(report).unlink(missing_ok=True)
        report.delete()
        count += 1
    return count


def status_body(report: ReportFile, status_url: str, download_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(report.uuid),
        "status": report.status,
        "progress": report.progress,
        "format": report.format,
        "families": report.families,
        "statusUrl": status_url,
    }
    if report.status == ReportFile.Status.DONE:
        body.update(downloadUrl=download_url, expiresAt=report.expires_at.isoformat() if report.expires_at else None)
    if report.status == ReportFile.Status.FAILED:
        body["error"] = report.error
    return body
