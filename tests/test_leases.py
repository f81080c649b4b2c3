"""Delivery leases and the sweeper's poll: ownership, not age; due rows handed out on time; real HTTP gateways.

Transactional: the lease keeper extends leases from a thread of its own (its own connection), so the rows must be
committed for it to see them, as in production.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections import Counter
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from notifier import tasks
from notifier.delivery.lease import LeaseKeeper
from notifier.delivery.runner import deliver_chunk
from notifier.delivery.store import claim_chunk, hand_out_due, reclaim_expired, take_turn
from notifier.models import Outbox
from tests.factories import bare_outboxes, in_threads, json_account
from tests.gateway import GatewayServer, Reply
from tests.processes import run_python

pytestmark = pytest.mark.django_db(transaction=True)
T0 = dt.datetime(2026, 11, 28, 7, 0, tzinfo=dt.UTC)
GRACE = dt.timedelta(minutes=10)


@pytest.fixture(autouse=True)
def quick_settings(settings: Any) -> None:
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "http_connect_timeout_seconds": 1.0,
        "http_read_timeout_seconds": 5.0,
        "rate_limit_per_second": 1000.0,
        "circuit_breaker": {"failure_threshold": 3, "window_seconds": 60, "cooldown_seconds": 30},
    }


def received(gateway: GatewayServer) -> Counter[str]:
    return Counter(json.loads(request.body)["to"] for request in gateway.received)


def statuses(rows: list[Outbox]) -> list[str]:
    found = dict(Outbox.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", "status"))
    return [found[row.pk] for row in rows]


def test_it_sends_each_message_of_a_chunk_slower_than_its_lease_exactly_once(
    settings: Any, gateway: GatewayServer
) -> None:
    """Issue 12: a chunk running past the stale threshold had its untried rows re-enqueued while it went on sending
    them. Here the chunk takes three leases, one call alone outlasts a lease, and a sweeper
    sweeps each time a call reaches the gateway."""
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 1.5
    json_account(gateway.url)
    gateway.queue(Reply(delay=2.0), *[Reply(delay=0.5)] * 5)
    rows = bare_outboxes(6)
    sweeps: list[tuple[tuple[int, int], list[int]]] = []

    def sweeper() -> None:
        """A sweep as each call reaches the gateway: from the second on, the chunk has outlasted its first lease."""
        try:
            for count in range(1, len(rows) + 1):
                if not gateway.wait_for_requests(count, timeout=30):
                    return
                sweeps.append((reclaim_expired(), hand_out_due(100, dt.timedelta(0))))
        finally:
            connection.close()

    thread = threading.Thread(target=sweeper)
    thread.start()
    started = time.monotonic()
    try:
        outcome = deliver_chunk([row.pk for row in rows])
    finally:
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started > 3 * 1.5, "the chunk did outlast its lease several times"
    assert list(outcome.values()) == ["sent"] * 6
    assert received(gateway) == Counter({row.recipient: 1 for row in rows})
    assert statuses(rows) == ["sent"] * 6
    assert len(sweeps) == 6
    assert {swept for swept, _handed in sweeps} == {(0, 0)}, "the sweeper never took a row of a live run back"
    assert [handed for _swept, handed in sweeps if handed] == []
    assert not Outbox.objects.exclude(lease_expires_at=None).exists(), "every outcome write ended its lease"


def test_it_sends_nothing_of_what_a_sweeper_took_back_from_a_run_that_stalled(settings: Any) -> None:
    """A run that lost its lease (paused, or cut off from the database longer than the lease) proves ownership
    before each send and finds it gone, whoever holds the row now."""
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 60
    first, second = bare_outboxes(2)
    with time_machine.travel(T0, tick=False) as clock:
        Outbox.objects.update(next_attempt_at=T0, created_at=T0)
        assert sorted(claim_chunk([first.pk, second.pk], T0, "paused-run")) == [first.pk, second.pk]
        lease = Outbox.objects.get(pk=first.pk).lease_expires_at
        clock.shift(1)
        assert take_turn(first.pk, "paused-run"), "the owner, within its lease"
        marked = Outbox.objects.get(pk=first.pk)
        assert marked.send_started_at == T0 + dt.timedelta(seconds=1), "the send is marked as started"
        # Only the keeper extends leases: the per-message mark writes no indexed column, so PostgreSQL can update
        # the row in place (HOT) instead of adding an entry to each of the outbox's indexes for every message.
        assert marked.lease_expires_at == lease
        assert not take_turn(first.pk, "another-run"), "not the owner"
        clock.shift(61)
        assert not take_turn(second.pk, "paused-run"), "an expired lease proves nothing, even before any sweep"
        assert reclaim_expired() == (1, 1)
        assert statuses([first, second]) == ["unknown", "pending"]
        assert claim_chunk([second.pk], timezone.now(), "rescuer") == [second.pk]
        assert not take_turn(second.pk, "paused-run")
        assert take_turn(second.pk, "rescuer")


def test_it_stops_extending_the_leases_of_a_run_that_makes_no_progress(settings: Any) -> None:
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 0.6
    rows = bare_outboxes(2)
    ids = claim_chunk([row.pk for row in rows], timezone.now(), "stuck-run")
    keeper = LeaseKeeper("stuck-run", ids, stall_seconds=1.5).start()
    try:
        time.sleep(1.0)
        assert reclaim_expired() == (0, 0), "extended while the run is within its stall allowance"
        time.sleep(1.8)
        assert reclaim_expired() == (2, 0), "then left to expire: the sweeper takes the rows back"
    finally:
        keeper.stop()
    assert statuses(rows) == ["pending", "pending"]


def test_it_hands_out_a_row_deferred_by_the_breaker_within_a_sweep_of_its_due_time(
    settings: Any, gateway: GatewayServer
) -> None:
    """Issue 12: rows an open breaker held back waited for the sweeper's grace (600 s) plus a sweep interval."""
    settings.NOTIFIER_SWEEP_GRACE_SECONDS = 600
    json_account(gateway.url)
    gateway.queue(*[Reply(status=503)] * 3)
    rows = bare_outboxes(4)
    with time_machine.travel(T0, tick=False) as clock:
        Outbox.objects.update(next_attempt_at=T0, created_at=T0)
        assert list(deliver_chunk([row.pk for row in rows]).values()) == ["pending"] * 4  # 3 failures open it
        deferred = Outbox.objects.get(pk=rows[3].pk)
        assert deferred.attempts == 0 and deferred.last_error == "json: circuit breaker open"
        assert T0 + dt.timedelta(seconds=30) <= deferred.next_attempt_at <= T0 + dt.timedelta(seconds=32)
        # The three failed rows back off 30-60 s with jitter: keep them out of this count, it is about the deferred row.
        Outbox.objects.exclude(pk=deferred.pk).update(next_attempt_at=T0 + dt.timedelta(hours=1))
        clock.move_to(deferred.next_attempt_at - dt.timedelta(seconds=1))
        assert tasks.sweep_outbox()["requeued"] == 0, "not due yet"
        clock.move_to(deferred.next_attempt_at + dt.timedelta(seconds=1))
        assert tasks.sweep_outbox()["requeued"] == 1, "due: handed out at the first sweep after its due time"
    assert statuses(rows) == ["pending"] * 3 + ["sent"]
    assert received(gateway)[rows[3].recipient] == 1


def test_it_hands_a_due_row_out_once_until_its_task_may_have_been_lost(settings: Any) -> None:
    retry, fresh, resent = bare_outboxes(3)
    with time_machine.travel(T0, tick=False) as clock:
        Outbox.objects.update(next_attempt_at=T0, created_at=T0)
        Outbox.objects.filter(pk=retry.pk).update(attempts=1, claimed_at=T0 - dt.timedelta(minutes=1))
        Outbox.objects.filter(pk=resent.pk).update(requeued_at=T0)
        assert hand_out_due(100, GRACE) == [retry.pk, resent.pk], "the fresh row's own task may still be queued"
        clock.shift(60)
        assert hand_out_due(100, GRACE) == [], "already handed to a task"
        clock.shift(GRACE)
        assert hand_out_due(100, GRACE) == [retry.pk, fresh.pk, resent.pk], "those tasks were lost"
        assert hand_out_due(100, GRACE) == []


def test_it_never_hands_the_same_row_to_two_concurrent_sweeps() -> None:
    rows = bare_outboxes(40)
    Outbox.objects.update(claimed_at=timezone.now() - dt.timedelta(minutes=1))
    handed: list[list[int]] = []
    in_threads(lambda: handed.append(hand_out_due(1000, GRACE)))
    assert sorted(handed[0] + handed[1]) == [row.pk for row in rows]


def test_it_refuses_the_setting_the_lease_replaced() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "NOTIFIER_SENDING_STALE_SECONDS": "900"}
    done = run_python("-c", "import django; django.setup()", env=env, timeout=60)
    assert done.returncode != 0
    assert "NOTIFIER_SENDING_STALE_SECONDS: no longer used" in done.stderr
    assert "NOTIFIER_DELIVERY_LEASE_SECONDS" in done.stderr
