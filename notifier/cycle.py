"""One full notification cycle in this process: detection per enabled type, then delivery of what it queued.

What `send_notifications` and the demo run when there is no broker (the embedded mode). It takes the dispatcher's
lock and records a DispatcherRun like the beat-driven dispatcher, so the two never overlap and the health check
sees the run.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from django.utils import timezone

from notifier.delivery import deliver_chunk
from notifier.detection import DetectionResult, run_all_detection
from notifier.locks import dispatcher_lock
from notifier.models import DispatcherRun
from notifier.tasks import chunk_size


class CycleSkipped(RuntimeError):
    """Another dispatcher run holds the lock."""


@dataclass
class TypeCycle:
    detection: DetectionResult
    delivered: Counter[str] = field(default_factory=Counter)  # final status -> count

    @property
    def notification_type(self) -> str:
        return self.detection.notification_type


def run_cycle(run_date: dt.date | None = None, *, types: list[str] | None = None) -> list[TypeCycle]:
    lock = dispatcher_lock()
    if not lock.acquire():
        raise CycleSkipped("another dispatcher run is in progress (it holds the dispatcher lock); nothing done")
    try:
        run_date = run_date or timezone.localdate()
        run = DispatcherRun.begin(run_date)
        cycles = []
        for result in run_all_detection(run_date, types=types):
            cycle = TypeCycle(detection=result)
            ids, size = result.queued_outbox_ids, chunk_size()
            for start in range(0, len(ids), size):
                cycle.delivered.update(deliver_chunk(ids[start : start + size]).values())
            cycles.append(cycle)
        run.notification_types = [cycle.notification_type for cycle in cycles]
        run.completed_at = timezone.now()
        run.save(update_fields=["notification_types", "completed_at"])
        return cycles
    finally:
        lock.release()


# deliver_chunk() status -> column: "pending" means a retry is scheduled, "skipped" that another process claimed it.
DELIVERY_COLUMNS = {
    "sent": "sent",
    "pending": "retry",
    "failed": "failed",
    "unknown": "unknown",
    "skipped": "elsewhere",
}


def cycle_table(cycles: list[TypeCycle]) -> list[str]:
    """Per type: queued, what delivery made of them, and the candidates not queued by reason."""
    header = f"{'type':<26} {'queued':>6} " + " ".join(f"{column:>9}" for column in DELIVERY_COLUMNS.values())
    lines = [header + "  not queued (reason: count)", "-" * (len(header) + 29)]
    totals: Counter[str] = Counter()
    skipped_total: Counter[str] = Counter()
    for cycle in cycles:
        result = cycle.detection
        totals["queued"] += result.queued
        totals.update(cycle.delivered)
        skipped_total.update(result.skipped)
        lines.append(_row(result.notification_type, result.queued, cycle.delivered, result.skipped))
    lines.append("-" * (len(header) + 29))
    lines.append(_row("total", totals["queued"], totals, skipped_total))
    return lines


def _row(label: str, queued: int, delivered: Counter[str], skipped: dict[str, int] | Counter[str]) -> str:
    columns = " ".join(f"{delivered.get(status, 0):>9}" for status in DELIVERY_COLUMNS)
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items()) if count) or "-"
    return f"{label:<26} {queued:>6} {columns}  {reasons}"
