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
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from notifier.delivery.runner import deliver_chunk
from notifier.delivery.store import hand_out_due, reclaim_expired
from notifier.locks import NonBlockingLock
from notifier.settings import get_settings
from notifier.types import get_type

logger = logging.getLogger(__name__)


def chunk_size() -> int:
    return get_settings().delivery_chunk_size


def enqueue_delivery(outbox_ids: Sequence[int]) -> int:
    """Enqueue delivery tasks for these ids in chunks once the current transaction commits. Returns the chunk count.

    After commit, so that a worker never looks for a row that is not visible yet; a crash between the commit and
    the enqueue is what the sweeper is for.
    """
    ids = [int(outbox_id) for outbox_id in outbox_ids]
    size = chunk_size()
    chunks = [ids[start : start + size] for start in range(0, len(ids), size)]
    for chunk in chunks:
        transaction.on_commit(partial(_enqueue_chunk, chunk))
    return len(chunks)


def _enqueue_chunk(outbox_ids: list[int]) -> None:
    deliver_outbox_chunk.delay(outbox_ids)


@shared_task(name="notifier.tasks.send_notification_messages")
def send_notification_messages(run_date_iso: str | None = None) -> dict[str, Any]:
    """The beat's dispatcher: notifier.dispatch.dispatch() with hand-off to the workers (in-process without a
    broker). An overlapping or duplicated tick is skipped."""
    from notifier.dispatch import DispatchSkipped, dispatch

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
    from notifier.detection import run_detection

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


@shared_task(
    name="notifier.tasks.deliver_outbox_chunk",
    # The database away for a moment (a restart, a fail-over): try again within seconds, not after the sweeper's
    # grace. Rows this run had claimed are its own until their lease expires, so a retry cannot send them twice.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=30,
    max_retries=5,
)
def deliver_outbox_chunk(outbox_ids: list[int]) -> dict[str, int]:
    """Deliver the rows as one chunk; a row another worker already claimed comes back "skipped", so a redelivered
    chunk is safe."""
    return dict(Counter(deliver_chunk([int(outbox_id) for outbox_id in outbox_ids]).values()))


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
    from notifier.phones import refresh_family_phones

    written = refresh_family_phones()
    logger.info("family phones: full refresh wrote %s rows", written)
    return {"family_phones": written}


from notifier import operator_tasks  # noqa: E402, F401 - registers the operator pages' tasks
