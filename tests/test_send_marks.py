"""Send marks in Redis (NOTIFIER_DELIVERY_MARKS=redis): the admission marks a row's send as started; the sweeper
fences a run before taking its rows back; marks Redis lost are never read as "nothing started".

Transactional, with the real Redis of the run and real HTTP gateways: the lease keeper and the sweeper's thread use
connections of their own.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.db import DatabaseError, connection
from django.utils import timezone

from notifier import coordination
from notifier.delivery.runner import deliver_chunk
from notifier.delivery.store import MARKS_IN_REDIS, claim_chunk, new_owner, reclaim_expired
from notifier.models import DeliveryAttempt, Outbox
from tests.delivery_helpers import marks_key
from tests.factories import bare_outboxes, json_account
from tests.gateway import GatewayServer, Reply, closed_port_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_settings(settings: Any) -> None:
    settings.NOTIFIER_DELIVERY_MARKS = "redis"
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "http_connect_timeout_seconds": 1.0,
        "http_read_timeout_seconds": 5.0,
        "rate_limit_per_second": 1000.0,
    }


def client(settings: Any) -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def statuses(rows: list[Outbox]) -> list[str]:
    found = dict(Outbox.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", "status"))
    return [found[row.pk] for row in rows]


def received(gateway: GatewayServer) -> Counter[str]:
    return Counter(json.loads(request.body)["to"] for request in gateway.received)


def owner_of(rows: list[Outbox]) -> str:
    owners = set(Outbox.objects.filter(pk__in=[row.pk for row in rows]).values_list("lease_owner", flat=True))
    owners.discard("")
    assert len(owners) == 1, owners
    return owners.pop()


def deliver_while(rows: list[Outbox], meanwhile: Callable[[], None]) -> dict[int, str]:
    """deliver_chunk over the rows while `meanwhile` runs in a thread of its own (with its own connection)."""

    def run() -> None:
        try:
            meanwhile()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        return deliver_chunk([row.pk for row in rows])
    finally:
        thread.join(timeout=10)


def claimed_by_a_redis_run(rows: list[Outbox], now: dt.datetime) -> str:
    """The rows claimed by a run that keeps its marks in Redis, opened first as the runner does; its owner token."""
    owner = new_owner(marks_in_redis=True)
    coordination.open_run(owner)
    assert sorted(claim_chunk([row.pk for row in rows], now, owner)) == sorted(row.pk for row in rows)
    return owner


def admit(owner: str, outbox_id: int) -> coordination.Admission:
    return coordination.admit(1, 1000.0, 0.0, cooldown=30.0, mark=(owner, outbox_id))


# --- the protocol ---------------------------------------------------------------------------------------------


def test_a_run_owner_says_where_its_marks_are() -> None:
    in_redis, in_database = new_owner(marks_in_redis=True), new_owner()
    assert in_redis.startswith(MARKS_IN_REDIS) and not in_database.startswith(MARKS_IN_REDIS)
    assert len(in_redis) == len(in_database) == 32, "the width of Outbox.lease_owner"
    assert all(character in "0123456789abcdef" for character in in_database)


def test_an_admission_marks_the_row_and_the_fence_ends_the_run(settings: Any) -> None:
    owner = new_owner(marks_in_redis=True)
    coordination.open_run(owner)
    assert client(settings).ttl(marks_key(owner)) > 24 * 3600, "kept far longer than any run"
    assert admit(owner, 11).ok
    assert admit(owner, 12).ok
    assert coordination.fence_run(owner) == {11, 12}
    refused = admit(owner, 13)
    assert (refused.ok, refused.reason) == (False, "fenced")
    assert coordination.fence_run(owner) == {11, 12}, "a second sweep reads the same marks"
    assert not coordination.marks_to_database(owner), "a fenced run cannot move its marks"
    coordination.close_run(owner)
    assert not client(settings).exists(marks_key(owner))


def test_marks_redis_lost_are_gone_for_the_run_and_everything_for_the_sweeper(settings: Any) -> None:
    owner = new_owner(marks_in_redis=True)
    coordination.open_run(owner)
    assert admit(owner, 21).ok
    client(settings).delete(marks_key(owner))  # a restart without persistence, FLUSHALL, an eviction
    gone = admit(owner, 22)
    assert (gone.ok, gone.reason) == (False, "gone")
    assert coordination.marks_to_database(owner), "the live run moves its marks to the database"
    refused = admit(owner, 22)
    assert (refused.ok, refused.reason) == (False, "fenced"), "and never marks in Redis again"

    other = new_owner(marks_in_redis=True)
    coordination.open_run(other)
    client(settings).delete(marks_key(other))
    assert coordination.fence_run(other) is None, "lost: any of its rows may have been sent"
    assert (admit(other, 31).reason, coordination.marks_to_database(other)) == ("fenced", False)


def test_marks_written_before_the_server_last_started_are_not_trusted(settings: Any) -> None:
    """A restart that reloads a snapshot or an AOF, or a failover to a replica, keeps the hash but may have lost its
    last writes (a mark, or the sweeper's fence): the server it was written to tells."""
    owner = new_owner(marks_in_redis=True)
    coordination.open_run(owner)
    assert admit(owner, 51).ok
    client(settings).hset(marks_key(owner), "~server", "0" * 40)  # as if written before a restart
    gone = admit(owner, 52)
    assert (gone.ok, gone.reason) == (False, "gone"), "the live run stops marking there"
    assert coordination.fence_run(owner) is None, "the sweeper counts every row of the run as started"
    assert admit(owner, 52).reason == "fenced"
    assert coordination.fence_run(owner) is None, "and so does every later sweep"
    assert not coordination.marks_to_database(owner), "fenced by this server"

    other = new_owner(marks_in_redis=True)
    coordination.open_run(other)
    client(settings).hset(marks_key(other), mapping={"_": "fenced", "~server": "0" * 40})  # a fence from before
    assert coordination.marks_to_database(other), "each later mark proves the row in the database"
    assert coordination.fence_run(other) == set(), "marks in the database: the sweeper reads send_started_at"


def test_the_breaker_still_refuses_before_anything_is_marked(settings: Any) -> None:
    owner = new_owner(marks_in_redis=True)
    coordination.open_run(owner)
    for _ in range(coordination.breaker_settings().threshold):
        coordination.record_failure(1)
    refused = admit(owner, 41)
    assert (refused.ok, refused.reason) == (False, "breaker")
    assert coordination.fence_run(owner) == set()


# --- the sweeper ----------------------------------------------------------------------------------------------


def test_the_sweeper_asks_redis_what_a_dead_run_started(settings: Any) -> None:
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 60
    rows = bare_outboxes(3)
    now = timezone.now()
    owner = claimed_by_a_redis_run(rows, now)
    assert admit(owner, rows[0].pk).ok  # then the run died
    assert reclaim_expired(now + dt.timedelta(seconds=30)) == (0, 0), "leases not expired"
    assert reclaim_expired(now + dt.timedelta(seconds=61)) == (2, 1)
    assert statuses(rows) == ["unknown", "pending", "pending"]
    assert admit(owner, rows[1].pk).reason == "fenced", "a run that was only paused sends nothing more"


def test_the_sweeper_gives_up_on_every_row_of_a_run_whose_marks_redis_lost(settings: Any) -> None:
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 60
    rows = bare_outboxes(2)
    now = timezone.now()
    owner = claimed_by_a_redis_run(rows, now)
    client(settings).delete(marks_key(owner))
    assert reclaim_expired(now + dt.timedelta(seconds=61)) == (0, 2)
    assert statuses(rows) == ["unknown", "unknown"]
    assert Outbox.objects.filter(pk=rows[0].pk, lease_owner=owner).exists(), "a paused run may still write"


def test_the_sweeper_gives_up_on_every_row_of_a_run_whose_marks_another_server_wrote(settings: Any) -> None:
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 60
    rows = bare_outboxes(2)
    now = timezone.now()
    owner = claimed_by_a_redis_run(rows, now)
    assert admit(owner, rows[0].pk).ok
    client(settings).hset(marks_key(owner), "~server", "0" * 40)  # Redis restarted from an AOF since
    assert reclaim_expired(now + dt.timedelta(seconds=61)) == (0, 2)
    assert statuses(rows) == ["unknown", "unknown"]


def test_the_sweeper_leaves_a_runs_rows_while_redis_is_out_of_reach(settings: Any) -> None:
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 60
    plain, marked = bare_outboxes(2)
    now = timezone.now()
    claimed_by_a_redis_run([marked], now)
    claim_chunk([plain.pk], now, new_owner())
    working = settings.REDIS_URL
    settings.REDIS_URL = closed_port_url().replace("http://", "redis://") + "/0"
    try:
        assert reclaim_expired(now + dt.timedelta(seconds=61)) == (1, 0), "marks in the database need no Redis"
    finally:
        settings.REDIS_URL = working
    assert statuses([plain, marked]) == ["pending", "sending"]
    assert reclaim_expired(now + dt.timedelta(seconds=61)) == (1, 0), "Redis is back: the untried row is queued"
    assert statuses([plain, marked]) == ["pending", "pending"]


# --- a live run -----------------------------------------------------------------------------------------------


def test_a_run_whose_marks_redis_lost_goes_on_with_marks_in_the_database(settings: Any, gateway: GatewayServer) -> None:
    json_account(gateway.url)
    gateway.queue(Reply(), Reply(delay=0.5), Reply(delay=0.5))  # the third call is held while we look
    rows = bare_outboxes(5)
    seen: dict[str, Any] = {}

    def flush_while_the_second_call_is_out() -> None:
        if gateway.wait_for_requests(2, timeout=30):
            owner = owner_of(rows)
            client(settings).delete(marks_key(owner))
            if gateway.wait_for_requests(3, timeout=30):
                seen["marks"] = client(settings).hgetall(marks_key(owner))
                seen["statuses"] = statuses(rows)
                seen["marked"] = Outbox.objects.get(pk=rows[2].pk).send_started_at is not None

    outcome = deliver_while(rows, flush_while_the_second_call_is_out)
    assert list(outcome.values()) == ["sent"] * 5
    assert received(gateway) == Counter({row.recipient: 1 for row in rows})
    # By the third call: what the run had sent was written, its marks were in the database, the third one marked.
    marks = seen.pop("marks")
    assert marks[b"_"] == b"database" and not [field for field in marks if field.isdigit()], marks
    assert seen == {"statuses": ["sent", "sent"] + ["sending"] * 3, "marked": True}
    assert not client(settings).exists(marks_key(owner_of(rows))), "removed once every outcome was written"


def test_a_run_the_sweeper_fenced_sends_nothing_more(settings: Any, gateway: GatewayServer) -> None:
    settings.NOTIFIER_DELIVERY_LEASE_SECONDS = 1.5
    json_account(gateway.url)
    gateway.queue(Reply(), Reply(delay=0.5))
    rows = bare_outboxes(4)
    fenced: list[set[int] | None] = []

    def fence_while_the_second_call_is_out() -> None:
        if gateway.wait_for_requests(2, timeout=30):
            fenced.append(coordination.fence_run(owner_of(rows)))

    outcome = deliver_while(rows, fence_while_the_second_call_is_out)
    assert fenced == [{rows[0].pk, rows[1].pk}]
    assert list(outcome.values()) == ["sent", "sent", "skipped", "skipped"]
    assert received(gateway) == Counter({rows[0].recipient: 1, rows[1].recipient: 1})
    assert statuses(rows) == ["sent", "sent", "sending", "sending"], "left to the sweeper"
    time.sleep(1.6)
    assert reclaim_expired() == (2, 0)
    assert statuses(rows) == ["sent", "sent", "pending", "pending"]


def test_a_run_keeps_no_marks_once_its_outcomes_are_written(settings: Any, gateway: GatewayServer) -> None:
    json_account(gateway.url)
    rows = bare_outboxes(3)
    before = set(client(settings).scan_iter(match=marks_key("*")))
    assert list(deliver_chunk([row.pk for row in rows]).values()) == ["sent"] * 3
    assert set(client(settings).scan_iter(match=marks_key("*"))) <= before
    # The start of each send is written with its outcome, for the operator.
    started = {attempt.outbox_id: attempt.started_at for attempt in DeliveryAttempt.objects.all()}
    written = dict(Outbox.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", "send_started_at"))
    assert written == started and len(started) == 3


def test_database_marks_when_chosen(settings: Any, gateway: GatewayServer) -> None:
    settings.NOTIFIER_DELIVERY_MARKS = "database"
    json_account(gateway.url)
    rows = bare_outboxes(2)
    assert list(deliver_chunk([row.pk for row in rows]).values()) == ["sent"] * 2
    assert Outbox.objects.filter(pk__in=[row.pk for row in rows], send_started_at__isnull=False).count() == 2


# --- writes that fail ------------------------------------------------------------------------------------------


def test_a_chunk_keeps_what_it_could_not_write_and_writes_it_once_the_database_is_back(
    settings: Any, gateway: GatewayServer
) -> None:
    """A write that fails (here: the database connection is gone, as in a PostgreSQL restart) loses nothing: the
    outcomes and attempts stay with the chunk, and the patient last write puts them in once it can."""
    from notifier.delivery.chunk import attempt, finish, flush_patiently, load_chunk
    from notifier.delivery.store import claimed_rows

    account = json_account(gateway.url)
    rows = bare_outboxes(2)
    owner = new_owner()
    claim_chunk([row.pk for row in rows], timezone.now(), owner)
    chunk = load_chunk(claimed_rows([row.pk for row in rows]), owner)
    for row in rows:
        attempt(chunk, row, account, "success", timezone.now())
        finish(chunk, row, Outbox.Status.SENT, account=account.pk, reference="ref", count_attempt=True)
    connection.ensure_connection()
    connection.connection.close()  # the server side of the connection is gone
    with pytest.raises(DatabaseError):
        chunk.flush()
    assert sorted(chunk.writes) == [row.pk for row in rows] and len(chunk.attempts) == 2, "nothing dropped"
    connection.close()
    flush_patiently(chunk)
    assert statuses(rows) == ["sent", "sent"]
    assert DeliveryAttempt.objects.filter(outbox__in=rows).count() == 2
    assert (chunk.writes, chunk.attempts) == ({}, [])
