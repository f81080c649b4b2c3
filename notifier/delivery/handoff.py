"""The hand-off from detection (and the sweeper) to the delivery workers: outbox ids in chunks of
NOTIFIER_DELIVERY_CHUNK_SIZE (a small batch in up to SPREAD smaller ones), enqueued once the transaction that
wrote them commits, and the task that delivers a chunk. Only ids travel on the broker, never a text or a secret."""

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


# A batch that would fill fewer chunks than SPREAD is cut into up to SPREAD: its messages are sent by several workers
# side by side instead of one after the other by one (a chunk is sent serially), so a small batch lands sooner.
SPREAD = 4
# ...but into no more pieces than it holds MIN_SPREAD_ROWS ids: a task costs the machine ~5 ms of CPU of its own
# (Celery's hand-over and the chunk's statements), as much as two or three messages to a fast gateway. At 50 msg/s
# arriving 5 at a time, one chunk of 5 used 5.4-5.6 ms of CPU per message for a p99 of 23-24 ms; chunks of 2, 1, 1
# and 1 used 9.0-9.9 ms for a p99 of 33-34 ms (bench/README.md). Kept small because a slow gateway (hundreds of ms a
# call) turns every extra message in a chunk into that much more waiting for the last one.
MIN_SPREAD_ROWS = 5


def split(outbox_ids: Sequence[int]) -> list[list[int]]:
    """The chunks a batch of ids is handed off in: NOTIFIER_DELIVERY_CHUNK_SIZE ids each, or, for a batch smaller
    than SPREAD chunks, up to SPREAD nearly equal ones (one per MIN_SPREAD_ROWS ids). A big batch keeps the size
    that spreads the per-chunk work over many messages; a small one is latency-bound, and is sent by several
    workers side by side as long as each piece is worth its task."""
    ids = [int(outbox_id) for outbox_id in outbox_ids]
    pieces = max(1, min(SPREAD, len(ids) // MIN_SPREAD_ROWS))
    size = min(chunk_size(), max(1, -(-len(ids) // pieces)))
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def enqueue_delivery(outbox_ids: Sequence[int]) -> int:
    """Enqueue delivery tasks for these ids in chunks once the current transaction commits. Returns the chunk count.

    After commit, so that a worker never looks for a row that is not visible yet; a crash between the commit and
    the enqueue is what the sweeper is for.
    """
    chunks = split(outbox_ids)
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
