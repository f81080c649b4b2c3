"""Celery tasks behind the operator's pages: the dashboard's forecast, PDF reports."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from notifier.detection import scheme_today
from notifier.forecast import forecast, store_forecast
from notifier.report.files import clean_expired, produce
from notifier.settings import get_config
from notifier.types import NOTIFICATION_TYPES

FORECAST_DAYS = 30


@shared_task(name="notifier.tasks.refresh_forecast")
def refresh_forecast(days: int = FORECAST_DAYS) -> dict[str, Any]:
    """Recompute the dashboard's forecast (enabled types, or all six when none is enabled yet) from today's data."""
    config = get_config()
    types = config.enabled_types() or list(NOTIFICATION_TYPES)
    rows = store_forecast(forecast(scheme_today(), days, types))
    return {"rows": rows, "types": types}


@shared_task(name="notifier.tasks.build_report_file", acks_late=True)
def build_report_file(report_id: int) -> dict[str, Any]:
    report = produce(report_id)
    return {"status": report.status, "families": report.families}


@shared_task(name="notifier.tasks.operator_housekeeping")
def operator_housekeeping() -> dict[str, Any]:
    """Hourly: delete report files past their keeping time."""
    return {"report_files_deleted": clean_expired()}
