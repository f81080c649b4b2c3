"""Celery tasks: thin, named explicitly, with ids and dates only on the broker (never a model, a text or a secret).

beat → send_notification_messages (one at a time, by a non-blocking lock) → detect_notifications per enabled type
→ after commit, deliver_outbox_chunk with outbox ids. sweep_outbox re-enqueues what a crash left behind.
In the embedded mode (memory broker, always eager) the same calls run in-process, one after another.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifier.conf import get_config
from notifier.config import NOTIFICATION_TYPES
from notifier.locks import NonBlockingLock, dispatcher_lock
from notifier.models import DispatcherRun, Outbox

logger = logging.getLogger(__name__)


def _setting(name: str, default: int) -> int:
    value = getattr(settings, name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def chunk_size() -> int:
    return _setting("NOTIFIER_DELIVERY_CHUNK_SIZE", 50)


def enabled_types() -> list[str]:
    config = get_config()
    return [name for name in NOTIFICATION_TYPES if config.is_enabled(name)]


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
    """The dispatcher: one detection task per enabled type. An overlapping or duplicated tick is skipped."""
    lock = dispatcher_lock()
    if not lock.acquire():
        logger.info("dispatcher: another run holds the lock, this one is skipped")
        return {"skipped": True}
    try:
        run_date = dt.date.fromisoformat(run_date_iso) if run_date_iso else timezone.localdate()
        types = enabled_types()
        run = DispatcherRun.begin(run_date, types)
        errors = []
        for notification_type in types:
            try:
                detect_notifications.delay(notification_type, run_date.isoformat())
            except Exception as exc:  # one type's failure (eager mode) or a broker hiccup must not stop the others
                logger.exception("dispatcher: %s could not be dispatched", notification_type)
                errors.append(f"{notification_type}: {type(exc).__name__}: {exc}")
        run.completed_at = timezone.now()
        run.error = "\n".join(errors)
        run.save(update_fields=["completed_at", "error"])
        logger.info("dispatcher: run %s for %s dispatched %s", run.pk, run_date, ", ".join(types) or "no type")
        return {"skipped": False, "run_date": run_date.isoformat(), "types": types, "errors": len(errors)}
    finally:
        lock.release()


@shared_task(name="notifier.tasks.detect_notifications")
def detect_notifications(notification_type: str, run_date_iso: str) -> dict[str, Any]:
    """No lock here: detection is safe to run twice at once (the outbox's unique constraint), so a task redelivered
    after a worker died simply runs again."""
    from notifier.detection import run_detection

    if notification_type not in NOTIFICATION_TYPES:
        raise ValueError(f"notification_type: unknown type {notification_type!r}")
    result = run_detection(notification_type, dt.date.fromisoformat(run_date_iso))
    chunks = enqueue_delivery(result.queued_outbox_ids)
    return {
        "notification_type": notification_type,
        "queued": result.queued,
        "not_queued": dict(result.skipped),
        "obsolete": result.obsolete,
        "delivery_chunks": chunks,
    }


@shared_task(name="notifier.tasks.deliver_outbox_chunk")
def deliver_outbox_chunk(outbox_ids: list[int]) -> dict[str, int]:
    """Deliver the rows as one chunk; a row another worker already claimed comes back "skipped", so a redelivered
    chunk is safe."""
    from notifier.delivery import deliver_chunk

    return dict(Counter(deliver_chunk([int(outbox_id) for outbox_id in outbox_ids]).values()))


def lost_outbox_ids(limit: int, now: dt.datetime) -> list[int]:
    """Pending rows that are due and that no delivery task carries: retries (nothing enqueues a retry but the
    sweeper), rows an operator resent, and rows whose task was lost (due for longer than the grace period; a
    fresh row's task may simply still be in the queue)."""
    grace = dt.timedelta(seconds=_setting("NOTIFIER_SWEEP_GRACE_SECONDS", 600))
    due = Outbox.objects.filter(status=Outbox.Status.PENDING, next_attempt_at__lte=now)
    lost = due.filter(Q(attempts__gt=0) | Q(requeued_at__isnull=False) | Q(next_attempt_at__lte=now - grace))
    return list(lost.order_by("next_attempt_at", "id").values_list("id", flat=True)[:limit])


@shared_task(name="notifier.tasks.sweep_outbox")
def sweep_outbox() -> dict[str, Any]:
    """Rows left `sending` by a dead worker become `unknown` when their send had started (the gateway may have
    them: never resent automatically) and pending when it had not; pending rows without a task are enqueued again."""
    from notifier.delivery import release_stale_sending

    lock = NonBlockingLock("sweeper", _setting("NOTIFIER_SWEEP_LOCK_SECONDS", 600))
    if not lock.acquire():
        return {"skipped": True}
    try:
        now = timezone.now()
        abandoned = release_stale_sending(
            dt.timedelta(seconds=_setting("NOTIFIER_SENDING_STALE_SECONDS", 900)), now=now
        )
        ids = lost_outbox_ids(_setting("NOTIFIER_SWEEP_LIMIT", 5000), now)
        chunks = enqueue_delivery(ids)
    finally:
        lock.release()
    if ids or abandoned:
        logger.info(
            "sweeper: re-enqueued %s pending rows in %s chunks; %s abandoned sends", len(ids), chunks, abandoned
        )
    return {"skipped": False, "requeued": len(ids), "chunks": chunks, "abandoned": abandoned}


from notifier import operator_tasks  # noqa: E402, F401 - registers the operator pages' tasks
