"""The thread that keeps a delivery run's leases alive while the run makes progress (see notifier.delivery.store)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from django.db import DatabaseError, connections, router

from notifier.delivery import store
from notifier.models import Outbox
from notifier.settings import get_settings

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Extends a delivery run's leases every third of the lease from a thread of its own, so that a slow provider
    call (or a long chunk) never lets them lapse while the run is alive.

    A run that makes no progress for `stall_seconds` (a call hanging past every timeout) is no longer vouched
    for: the keeper stops and lets the leases expire, so that the sweeper can take the rows back. A paused or
    killed process extends nothing either.
    """

    def __init__(self, owner: str, outbox_ids: Sequence[int], stall_seconds: float) -> None:
        self.owner = owner
        self.outbox_ids = list(outbox_ids)
        self.interval = get_settings().delivery_lease_seconds / 3
        self.stall_seconds = stall_seconds
        self.progress_at = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{owner[:8]}", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def progress(self) -> None:
        self.progress_at = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                stalled = time.monotonic() - self.progress_at
                if stalled > self.stall_seconds:
                    logger.warning(
                        "lease %s: no progress for %.0f s; leases left to expire for the sweeper", self.owner, stalled
                    )
                    return
                try:
                    store.extend(self.owner, self.outbox_ids)
                except DatabaseError as exc:
                    logger.warning("lease %s: could not extend (%s); trying again", self.owner, exc)
                    connections[router.db_for_write(Outbox)].close()
        finally:
            connections.close_all()  # this thread's connections only
