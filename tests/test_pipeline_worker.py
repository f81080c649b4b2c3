"""End to end on real processes: a Celery worker on Redis, the test PostgreSQL database, a local fake eGA gateway.

The worker is a subprocess started with DATABASE_URL pointing at pytest-django's test database (hence
transaction=True: it must see committed rows). Every wait is bounded; every process group is killed in teardown.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery
from django.db import connection
from django.utils import timezone

from notifier.delivery.handoff import chunk_size
from notifier.demo import load_demo
from notifier.detection import run_all_detection
from notifier.models import DetectionRun, DispatcherRun, Outbox
from notifier.types import NOTIFICATION_TYPES
from tests.delivery_helpers import started_sending
from tests.factories import ega_account
from tests.gateway import EGA_KEY, GatewayServer
from tests.processes import SERVICE_SECRET_KEY, kill_group, subprocess_database_url, wait_for

RUN_CLAIM = "notifier:test-run:owner"  # bin/test-redis-db

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
ALL_TYPES = dict.fromkeys(NOTIFICATION_TYPES, True)
WORKER_CONFIG = {
    "eligibleNotificationTypes": ALL_TYPES,
    "rate_limit_per_second": 1000.0,
    "http_read_timeout_seconds": 60.0,
    "quiet_hours": None,
}


@pytest.fixture
def redis_url(settings) -> Iterator[str]:
    url = settings.REDIS_URL
    if not url:
        pytest.fail("REDIS_URL must point at the test Redis (make pytest sets it)")
    client = redis.Redis.from_url(url)
    _empty(client)  # this test owns its Redis database: no queued task from an earlier run may leak in
    yield url
    _empty(client)
    client.close()


def _empty(client: redis.Redis) -> None:
    """FLUSHDB, keeping the key by which this checkout's run claims the db (bin/test-redis-db)."""
    owner, ttl = client.get(RUN_CLAIM), client.ttl(RUN_CLAIM)
    client.flushdb()
    if owner is not None:
        client.set(RUN_CLAIM, owner, ex=ttl if ttl > 0 else 7200)


@pytest.fixture
def celery_client(redis_url) -> Iterator[Celery]:
    client = Celery("e2e-client", broker=redis_url, backend=redis_url, set_as_current=False)
    client.conf.broker_connection_retry_on_startup = True
    yield client
    client.close()


@pytest.fixture
def scheme(settings) -> dt.date:
    settings.NOTIFIER = {**settings.NOTIFIER, **WORKER_CONFIG}
    today = timezone.localdate()
    load_demo(today=today, families=70, seed=7)
    return today


@pytest.fixture
def start_worker(redis_url, celery_client, tmp_path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        environment = {
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),
            "CELERY_BROKER_URL": redis_url,
            "DJANGO_SECRET_KEY": SERVICE_SECRET_KEY,
            "CELERY_RESULT_BACKEND": redis_url,
            "REDIS_URL": redis_url,
            "NOTIFIER_CONFIG": json.dumps(WORKER_CONFIG),
            "NOTIFIER_VAR_DIR": str(tmp_path),
            "NOTIFIER_DELIVERY_CHUNK_SIZE": "4",
            "NOTIFIER_SWEEP_GRACE_SECONDS": "1",
            "NOTIFIER_DELIVERY_LEASE_SECONDS": "5",
            "CELERY_VISIBILITY_TIMEOUT": "8",
        }
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "project",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--hostname",
                f"{name}@e2e",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        started.append(process)

        def answers_ping() -> bool:
            replies = celery_client.control.ping(destination=[f"{name}@e2e"], timeout=1)
            return bool(replies)

        wait_for(answers_ping, timeout=90, what=f"worker {name} to answer a ping", process=process)
        return process

    yield start
    for process in started:
        kill_group(process)


def call(client: Celery, task: str, *args: Any, timeout: float = 90) -> Any:
    return client.send_task(task, args=list(args)).get(timeout=timeout)


def settled() -> bool:
    return not Outbox.objects.filter(status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING]).exists()


def expected_per_type(today: dt.date) -> dict[str, int]:
    return {result.notification_type: result.queued for result in run_all_detection(today, dry_run=True)}


def outbox_messages(status: str | None = None) -> Counter[tuple[str, str]]:
    rows = Outbox.objects.all() if status is None else Outbox.objects.filter(status=status)
    return Counter((recipient.lstrip("+"), text) for recipient, text in rows.values_list("recipient", "text"))


def dispatch_and_hold_the_first(
    scheme: dt.date, celery_client: Celery, start_worker: Callable[..., Any], gateway: GatewayServer, name: str
) -> tuple[subprocess.Popen[bytes], int]:
    """An eGA account on `gateway` (which holds the first message), a one-process worker `name` and the day's
    dispatch: back once the first message is held, with the worker and how many outbox rows the day makes."""
    ega_account("e2e eGA", gateway.url)
    expected_total = sum(expected_per_type(scheme).values())
    worker: subprocess.Popen[bytes] = start_worker(name, concurrency=1)
    celery_client.send_task("notifier.tasks.send_notification_messages", args=[scheme.isoformat()])
    wait_for(gateway.holding.is_set, timeout=90, what="the first message to reach the gateway", process=worker)
    return worker, expected_total


def sweep_until_every_row_is_done(celery_client: Celery, expected_total: int, what: str) -> None:
    """Run the sweeper until no row is pending or sending and the day's rows are all there."""

    def done() -> bool:
        call(celery_client, "notifier.tasks.sweep_outbox", timeout=60)
        return settled() and Outbox.objects.count() == expected_total

    wait_for(done, timeout=180, what=what)


def test_it_delivers_every_due_message_exactly_once_through_a_real_worker(scheme, celery_client, start_worker):
    gateway = GatewayServer(ega_key=EGA_KEY)
    try:
        ega_account("e2e eGA", gateway.url)
        expected = expected_per_type(scheme)
        assert set(expected) == set(NOTIFICATION_TYPES)
        assert all(count > 0 for count in expected.values()), expected
        start_worker("main")

        outcome = call(celery_client, "notifier.tasks.send_notification_messages", scheme.isoformat())
        assert outcome["skipped"] is False
        assert sorted(outcome["types"]) == sorted(NOTIFICATION_TYPES)
        wait_for(
            lambda: DetectionRun.objects.filter(completed_at__isnull=False).count() == 6,
            timeout=90,
            what="six detection runs",
        )
        wait_for(settled, timeout=120, what="every outbox row to leave pending/sending")

        per_type = Counter(Outbox.objects.values_list("notification_type", flat=True))
        assert dict(per_type) == expected
        assert set(Outbox.objects.values_list("status", flat=True)) == {Outbox.Status.SENT}
        received = gateway.counts()
        assert received == outbox_messages()
        assert set(received.values()) == {1}
        assert gateway.bad_signatures == 0
        assert DispatcherRun.objects.filter(completed_at__isnull=False).count() == 1

        # A second dispatcher run finds everything queued already: nothing more reaches the gateway.
        assert call(celery_client, "notifier.tasks.send_notification_messages", scheme.isoformat())["skipped"] is False
        wait_for(
            lambda: DetectionRun.objects.filter(completed_at__isnull=False).count() == 12,
            timeout=90,
            what="six more detection runs",
        )
        assert call(celery_client, "notifier.tasks.sweep_outbox")["requeued"] == 0
        assert gateway.counts() == received
        assert Outbox.objects.count() == sum(expected.values())
    finally:
        gateway.stop()


def test_it_skips_a_dispatcher_run_that_overlaps_a_running_one(scheme, celery_client, start_worker, redis_url):
    start_worker("pair", concurrency=2)
    database = connection.settings_dict
    blocker = psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    )
    lock_key = "notifier:lock:dispatcher"
    client = redis.Redis.from_url(redis_url)
    try:
        # Hold the dispatcher inside its locked section: it waits on this table lock to record its run.
        blocker.execute("LOCK TABLE notifier_dispatcher_run IN ACCESS EXCLUSIVE MODE")
        first = celery_client.send_task("notifier.tasks.send_notification_messages", args=[scheme.isoformat()])
        wait_for(lambda: client.exists(lock_key) == 1, timeout=60, what="the first run to take the lock")
        second = celery_client.send_task("notifier.tasks.send_notification_messages", args=[scheme.isoformat()])
        assert second.get(timeout=60) == {"skipped": True}
        assert not first.ready()
        blocker.rollback()
        assert first.get(timeout=60)["skipped"] is False
        assert client.exists(lock_key) == 0  # released by its owner
    finally:
        blocker.rollback()
        blocker.close()
        client.close()
    assert DispatcherRun.objects.count() == 1


def test_it_delivers_everything_after_a_worker_is_killed_mid_delivery(scheme, celery_client, start_worker):
    gateway = GatewayServer(ega_key=EGA_KEY, hold_first=True)
    try:
        doomed, expected_total = dispatch_and_hold_the_first(scheme, celery_client, start_worker, gateway, "doomed")
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        gateway.release.set()
        in_flight = gateway.counts()
        assert sum(in_flight.values()) == 1
        # The killed worker had claimed its chunk (pending -> sending) as one, but only the message held at the
        # gateway had started its send: the sweeper must make that one `unknown` and queue the others again.
        claimed = outbox_messages(Outbox.Status.SENDING)
        assert 1 <= sum(claimed.values()) <= chunk_size()
        assert in_flight.keys() <= claimed.keys()
        assert len(started_sending()) == 1

        start_worker("rescuer", concurrency=2)
        sweep_until_every_row_is_done(celery_client, expected_total, "the sweeper and redelivery to finish every row")

        received = gateway.counts()
        assert set(received.values()) == {1}, "a message reached the gateway twice"
        assert received == outbox_messages()  # every message, the untried part of the killed chunk included
        unknown = outbox_messages(Outbox.Status.UNKNOWN)
        assert unknown == in_flight
        assert outbox_messages(Outbox.Status.SENT) + unknown == outbox_messages()
        assert Outbox.objects.count() == expected_total
    finally:
        gateway.stop()


def test_it_never_sends_twice_what_a_worker_paused_past_its_lease_was_holding(scheme, celery_client, start_worker):
    """SIGSTOP a worker in the middle of a provider call for longer than its lease (5 s here): the sweeper takes its
    rows back and another worker delivers them; when the paused one wakes up it records the answer it was waiting
    for and sends nothing of what it no longer owns."""
    gateway = GatewayServer(ega_key=EGA_KEY, hold_first=True)
    try:
        paused, expected_total = dispatch_and_hold_the_first(scheme, celery_client, start_worker, gateway, "paused")
        os.killpg(paused.pid, signal.SIGSTOP)
        try:
            [in_flight] = started_sending()
            start_worker("rescuer", concurrency=2)
            what = "the sweeper and the rescuer to finish every other row"
            sweep_until_every_row_is_done(celery_client, expected_total, what)
            assert Outbox.objects.get(pk=in_flight.pk).status == Outbox.Status.UNKNOWN
        finally:
            gateway.release.set()
            os.killpg(paused.pid, signal.SIGCONT)
        wait_for(
            lambda: Outbox.objects.get(pk=in_flight.pk).status == Outbox.Status.SENT,
            timeout=60,
            what="the woken worker to record the answer of its call",
            process=paused,
        )
        received = gateway.counts()
        assert set(received.values()) == {1}, "a message reached the gateway twice"
        assert received == outbox_messages()
        assert set(Outbox.objects.values_list("status", flat=True)) == {Outbox.Status.SENT}
    finally:
        gateway.stop()
