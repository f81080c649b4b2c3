"""One full notification cycle in this process (embedded mode, the demo) and the table that shows it.

The cycle is notifier.dispatch.dispatch() with in-process delivery: the same lock, phone catch-up, DispatcherRun
and detection as the beat-driven dispatcher, so the two never overlap and the health check sees the run.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from notifier.dispatch import DispatchSkipped, TypeDispatch, dispatch

CycleSkipped = DispatchSkipped  # another dispatcher run holds the lock
TypeCycle = TypeDispatch


def run_cycle(run_date: dt.date | None = None, *, types: list[str] | None = None) -> list[TypeCycle]:
    """Detect and deliver here, whatever the broker. Raises CycleSkipped while another run holds the lock."""
    return dispatch(run_date, types=types, in_process=True).types


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
        if result is None:
            lines.append(f"{cycle.notification_type:<26} detection failed: {cycle.error}")
            continue
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
