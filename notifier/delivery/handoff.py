"""The hand-off from detection (and the sweeper) to the delivery workers: outbox ids in chunks of
NOTIFIER_DELIVERY_CHUNK_SIZE, enqueued once the transaction that wrote them commits, and the task that delivers a
chunk. Only ids travel on the broker, never a text or a secret."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import partial

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction

from notifier.delivery.runner import deliver_chunk
from notifier.settings import get_settings


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
