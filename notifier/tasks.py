"""Celery tasks: thin, named explicitly, with ids and dates only on the broker (never a model, a text or a secret).

beat → send_notification_messages = notifier.dispatch.dispatch() (one at a time, by a non-blocking lock: phone
catch-up, run record, detection per enabled type) → after commit, deliver_outbox_chunk with outbox ids.
sweep_outbox (every NOTIFIER_SWEEP_INTERVAL_SECONDS, 15 s) takes back rows whose delivery lease expired and enqueues
the rows that are due and that no task carries: retries, deferrals, rows of a lost task. In the embedded mode (no
broker) dispatch() delivers in-process.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import shared_task
from django.utils import timezone

from notifier import operator_tasks  # noqa: F401 - Celery finds the operator pages' tasks through this module
from notifier.delivery.handoff import deliver_outbox_chunk, enqueue_delivery  # noqa: F401 - the delivery task, likewise
from notifier.delivery.store import hand_out_due, reclaim_expired
from notifier.detection import run_detection
from notifier.dispatch import DispatchSkipped, dispatch
from notifier.locks import NonBlockingLock
from notifier.phones import refresh_family_phones
from notifier.settings import get_settings
from notifier.types import get_type

logger = logging.getLogger(__name__)


@shared_task(name="notifier.tasks.send_notification_messages")
def send_notification_messages(run_date_iso: str | None = None) -> dict[str, Any]:
    """The beat's dispatcher: notifier.dispatch.dispatch() with hand-off to the workers (in-process without a
    broker). An overlapping or duplicated tick is skipped."""
    try:
        outcome = dispatch(dt.date.fromisoformat(run_date_iso) if run_date_iso else None)
    except DispatchSkipped:
        return {"skipped": True}
    return {
        "skipped": False,
        "run_id": outcome.run_id,
        "run_date": outcome.run_date.isoformat(),
        "types": [item.notification_type for item in outcome.types],
        "queued": {item.notification_type: item.queued for item in outcome.types},
        "errors": len(outcome.errors),
    }


@shared_task(name="notifier.tasks.detect_notifications")
def detect_notifications(notification_type: str, run_date_iso: str) -> dict[str, Any]:
    """Detection of one type, outside a dispatcher run (the dispatcher detects in its own task; this one is for
    running a single type by hand). No lock: detection is safe to run twice at once (the outbox's unique
    constraint), so a task redelivered after a worker died simply runs again."""
    get_type(notification_type)
    result = run_detection(notification_type, dt.date.fromisoformat(run_date_iso))
    chunks = enqueue_delivery(result.queued_outbox_ids)
    return {
        "notification_type": notification_type,
        "queued": result.queued,
        "not_queued": dict(result.skipped),
        "obsolete": result.obsolete,
        "delivery_chunks": chunks,
    }


@shared_task(name="notifier.tasks.sweep_outbox")
def sweep_outbox() -> dict[str, Any]:
    """Rows whose delivery lease expired (their run died, was paused or hung) become `unknown` when their send had
    started (the gateway may have them: never resent automatically) and pending when it had not; then the rows that
    are due and that no delivery task carries are enqueued (within a sweep interval of their due time)."""
    lock = NonBlockingLock("sweeper", get_settings().sweep_lock_seconds)
    if not lock.acquire():
        return {"skipped": True}
    try:
        now = timezone.now()
        requeued_untried, abandoned = reclaim_expired(now)
        grace = dt.timedelta(seconds=get_settings().sweep_grace_seconds)
        ids = hand_out_due(get_settings().sweep_limit, grace, now)
        chunks = enqueue_delivery(ids)
    finally:
        lock.release()
    if ids or abandoned or requeued_untried:
        logger.info(
            "sweeper: enqueued %s due rows in %s chunks; expired leases: %s queued again, %s unknown",
            len(ids),
            chunks,
            requeued_untried,
            abandoned,
        )
    return {"skipped": False, "requeued": len(ids), "chunks": chunks, "abandoned": abandoned}


@shared_task(name="notifier.tasks.refresh_all_family_phones")
def refresh_all_family_phones() -> dict[str, int]:
    """The scheduled full refresh of the derived family phones (SPEC §14): openIMIS may update tblInsuree.Phone in
    place, without a new version, which the dispatcher's catch-up by ValidityFrom/ValidityTo cannot see."""
    written = refresh_family_phones()
    logger.info("family phones: full refresh wrote %s rows", written)
    return {"family_phones": written}
