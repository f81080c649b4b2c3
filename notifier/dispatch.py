"""The one dispatch path: what the beat task, the embedded cycle (demo) and `send_notifications` all run.

    dispatch(run_date) = take the dispatcher lock (or skip: DispatchSkipped)
                       → catch up the derived family phones with insuree changes since the previous run
                       → record the DispatcherRun
                       → detection for every enabled type (or the given ones), each in its own transaction;
                         a type whose detection fails is logged with its traceback and recorded on the run,
                         the other types still run
                       → hand-off of each type's new outbox rows: to the Celery workers (chunks enqueued after
                         commit) with a broker, or delivered here, chunk by chunk, in the embedded mode
                       → the run is completed; its `error` names every type whose detection failed.

The health heartbeat counts a run only when its detection completed for every enabled type (no error), so a beat
whose detection keeps failing turns health red with the type and the error instead of staying green.

A dry run takes no lock and leaves nothing behind: the phone catch-up and detection run inside one transaction
that is rolled back, so what it prints is what a real run would queue now.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError

from notifier.delivery.handoff import chunk_size, enqueue_delivery
from notifier.delivery.runner import deliver_chunk
from notifier.detection import DetectionResult, Observer, run_detection, scheme_today
from notifier.locks import dispatcher_lock
from notifier.models import DispatcherRun
from notifier.phones import refresh_changed_family_phones
from notifier.settings import get_config
from notifier.types import known_types

logger = logging.getLogger(__name__)


class DispatchSkipped(RuntimeError):
    """Another dispatcher run holds the lock; this one did nothing."""


@dataclass
class TypeDispatch:
    """One type in one run: its detection (None when it failed), and what the hand-off did with its rows."""

    notification_type: str
    detection: DetectionResult | None = None
    error: str = ""  # detection failure: "ExceptionName: message"
    delivered: Counter[str] = field(default_factory=Counter)  # in process: deliver_chunk status -> count
    delivery_error: str = ""  # in process: a delivery chunk crashed (its rows are the sweeper's)
    handed_off_chunks: int = 0  # with a broker: delivery tasks enqueued
    handoff_error: str = ""  # with a broker: it could not be reached; the rows stay pending for the sweeper

    @property
    def queued(self) -> int:
        return self.detection.queued if self.detection is not None else 0


@dataclass
class DispatchOutcome:
    run_date: dt.date
    in_process: bool
    dry_run: bool
    run_id: int | None = None  # None for a dry run
    phones_refreshed: int = 0
    types: list[TypeDispatch] = field(default_factory=list)

    @property
    def errors(self) -> dict[str, str]:
        return {item.notification_type: item.error for item in self.types if item.error}


def _selected_types(types: Iterable[str] | None) -> list[str]:
    return get_config().enabled_types() if types is None else known_types(types)


def dispatch(
    run_date: dt.date | None = None,
    *,
    types: Iterable[str] | None = None,
    in_process: bool | None = None,
    dry_run: bool = False,
    observer: Observer | None = None,
) -> DispatchOutcome:
    """One dispatcher run for scheme day `run_date` (default: today in TIME_ZONE); see the module docstring.

    `types`: exactly these types (default: the enabled ones). `in_process`: deliver here rather than hand the rows
    to the workers (default: when there is no broker, the embedded mode). Raises DispatchSkipped when another run
    holds the dispatcher lock.
    """
    selected = _selected_types(types)
    run_date = run_date or scheme_today()
    if in_process is None:
        in_process = bool(settings.EMBEDDED_BROKER)
    outcome = DispatchOutcome(run_date=run_date, in_process=in_process, dry_run=dry_run)
    if dry_run:
        with transaction.atomic():
            outcome.phones_refreshed = _catch_up_phones()
            for name in selected:
                outcome.types.append(_detect(name, run_date, dry_run=True, observer=observer))
            transaction.set_rollback(True)
        return outcome

    lock = dispatcher_lock()
    if not lock.acquire():
        logger.info("dispatcher: another run holds the lock, this one (%s) is skipped", run_date)
        raise DispatchSkipped("another dispatcher run is in progress (it holds the dispatcher lock); nothing done")
    try:
        outcome.phones_refreshed = _catch_up_phones()
        run = DispatcherRun.objects.create(run_date=run_date, notification_types=selected)
        outcome.run_id = run.pk
        for name in selected:
            item = _detect(name, run_date, dry_run=False, observer=observer)
            outcome.types.append(item)
            if item.detection is not None and item.detection.queued_outbox_ids:
                _hand_off(item, item.detection.queued_outbox_ids, in_process=in_process)
        run.completed_at = timezone.now()
        run.error = "\n".join(f"{name}: {error}" for name, error in outcome.errors.items())
        run.save(update_fields=["completed_at", "error"])
    finally:
        lock.release()
    logger.info(
        "dispatcher: run %s for %s: %s%s",
        outcome.run_id,
        run_date,
        ", ".join(f"{item.notification_type} {item.queued}" for item in outcome.types) or "no type enabled",
        f"; detection failed for {', '.join(outcome.errors)}" if outcome.errors else "",
    )
    return outcome


def _catch_up_phones() -> int:
    """FamilyPhone follows insuree changes openIMIS made since the previous run started (all families the first
    time). Runs under the lock, before the run is recorded, so the next run starts from this one's start."""
    previous = DispatcherRun.objects.order_by("-started_at").values_list("started_at", flat=True).first()
    return refresh_changed_family_phones(previous)


def _detect(name: str, run_date: dt.date, *, dry_run: bool, observer: Observer | None) -> TypeDispatch:
    item = TypeDispatch(notification_type=name)
    try:
        item.detection = run_detection(name, run_date, dry_run=dry_run, observer=observer)
    except Exception as exc:  # one type's failure must not stop the others; it is recorded on the run
        logger.exception("dispatcher: detection of %s for %s failed", name, run_date)
        item.error = f"{type(exc).__name__}: {exc}".strip()[:1000]
    return item


def _hand_off(item: TypeDispatch, outbox_ids: list[int], *, in_process: bool) -> None:
    if not in_process:
        try:
            item.handed_off_chunks = enqueue_delivery(outbox_ids)
        except (BrokerError, RedisConnectionError, OSError) as exc:  # rows stay pending: the sweeper hands them out
            logger.warning("dispatcher: broker unreachable, %s rows of %s left pending", len(outbox_ids), item)
            item.handoff_error = " ".join(str(exc).split())[:160] or type(exc).__name__
        return
    size = chunk_size()
    for start in range(0, len(outbox_ids), size):
        try:
            item.delivered.update(deliver_chunk(outbox_ids[start : start + size]).values())
        except Exception as exc:  # its rows are pending/unknown now: the sweeper's; the next chunks still go
            logger.exception("dispatcher: in-process delivery of %s failed", item.notification_type)
            item.delivery_error = f"{type(exc).__name__}: {exc}"
