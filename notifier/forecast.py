"""What the next days would queue, per day and type (a dry-run detection per day, from today's data), with the SMS
segments it would cost. The command `forecast_notifications` prints it; the dashboard reads it from ForecastDay,
which `refresh_forecast` fills."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from notifier import rendering
from notifier.detection import run_detection
from notifier.detection_store import CandidateDecision
from notifier.models import ForecastDay, NotificationTemplate


@dataclass(frozen=True)
class ForecastCell:
    messages: int
    segments: int


def _segments(notification_type: str, language: str, cache: dict[tuple[str, str], int]) -> int:
    """Worst-case segments of the template a family of this language would get (long sample values)."""
    key = (notification_type, language)
    if key not in cache:
        try:
            template = rendering.choose_template(notification_type, language or None)
        except (NotificationTemplate.DoesNotExist, ValueError):
            cache[key] = 1
        else:
            report = rendering.template_report(
                template.text, template.language_id or "en", replace_lookalikes=template.replace_lookalikes
            )
            cache[key] = max(report.worst_case_segments, 1) if not report.error else 1
    return cache[key]


def forecast(first: dt.date, days: int, types: Sequence[str]) -> dict[dt.date, dict[str, ForecastCell]]:
    """Days simulated in order, so a message counted on one day is not counted again on the next."""
    already: set[tuple[int, str]] = set()
    segment_cache: dict[tuple[str, str], int] = {}
    result: dict[dt.date, dict[str, ForecastCell]] = {}
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        result[day] = {}
        for name in types:
            fresh: list[tuple[int, str]] = []
            segments = [0]

            def collect(
                decision: CandidateDecision, fresh: list[tuple[int, str]] = fresh, segments: list[int] = segments
            ) -> None:
                key = (decision.policy_id, decision.notification_type)
                if decision.outcome == "queued" and key not in already:
                    fresh.append(key)
                    segments[0] += _segments(decision.notification_type, decision.language, segment_cache)

            run_detection(name, day, dry_run=True, observer=collect)
            already.update(fresh)
            result[day][name] = ForecastCell(len(fresh), segments[0])
    return result


def store_forecast(cells: dict[dt.date, dict[str, ForecastCell]]) -> int:
    """Replace the stored forecast with these cells. Returns the rows written."""
    now = timezone.now()
    rows = [
        ForecastDay(day=day, notification_type=name, messages=cell.messages, segments=cell.segments, computed_at=now)
        for day, by_type in cells.items()
        for name, cell in by_type.items()
    ]
    with transaction.atomic():
        ForecastDay.objects.all().delete()
        ForecastDay.objects.bulk_create(rows)
    return len(rows)
