"""Chaos run: delivery through real Celery workers while things fail; exactly once or it says so.

    .venv/bin/python bench/chaos.py --quick        # every scenario at small size, a few minutes; exit 1 on a
                                                   # duplicate, a lost row, or a deferred row late by > 60 s

It starts everything it may break on loopback, of its own, and stops it at the end: a PostgreSQL cluster (initdb in
a temporary directory, a free port; run as the `postgres` user when started as root), a Redis server (free port, no
persistence), a fake JSON SMS gateway (ThreadingHTTPServer on port 0) whose behaviour each scenario sets, and two
Celery workers (prefork, 2 processes each). The machine's shared PostgreSQL and Redis are never touched.

Each scenario empties the notifier's tables, queues its rows (one distinct recipient per row) the way detection
does (`enqueue_delivery`), does its damage, and waits (bounded) until no row is pending or sending. The sweeper
runs every 2 s (beat's 15 s scaled down with the lease, 4 s, and the retry base, 2 s). Reported per scenario:
rows; sent / failed / unknown; duplicates (messages the gateway received more than once); lost (rows left
pending or sending, rows `sent` the gateway never received, rows detection should have queued and did not);
for deferred rows, the longest time from due to received.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, machine, setup_django, write_results

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
LEASE_SECONDS = 4
SWEEP_EVERY = 2.0
WORKER_SETTINGS = {
    "NOTIFIER_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
    "NOTIFIER_SWEEP_GRACE_SECONDS": "10",
    "NOTIFIER_RETRY_BASE_SECONDS": "2",
    "NOTIFIER_DELIVERY_CHUNK_SIZE": "5",
    "NOTIFIER_DELIVERY_FLUSH_SECONDS": "1",
}
NOTIFIER_CONFIG = {
    "eligibleNotificationTypes": {
        name: True
        for name in (
            "activation_of_policy",
            "starting_of_policy",
            "need_for_renewal",
            "expiration_of_policy",
            "reminder_after_expiration",
            "renewal_of_policy",
        )
    },
    "rate_limit_per_second": 1000.0,
    "max_attempts": 10,
    "http_connect_timeout_seconds": 1.0,
    "http_read_timeout_seconds": 3.0,
    "circuit_breaker": {"failure_threshold": 3, "window_seconds": 30, "cooldown_seconds": 5},
    # Measured at any hour: the default quiet hours (20:00-08:00) would hold every message until the morning.
    "quiet_hours": None,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return True
        time.sleep(step)
    return False


# --- servers of our own ---------------------------------------------------------------------------------------------


class Postgres:
    """A throw-away cluster: initdb in a temporary directory, trust auth on 127.0.0.1:<free port>."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pg"
        self.data.mkdir()
        self.port = free_port()
        self.log = root / "pg.log"
        self.as_postgres = os.geteuid() == 0  # initdb refuses root
        if self.as_postgres:
            shutil.chown(root, "postgres")
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self.options = options

    def _run(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def ctl(self, action: str, *extra: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data), "-o", self.options, "-l", str(self.log), "-w", *extra)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/notifier_chaos"

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE notifier_chaos")


class Redis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.root)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self.ping, 10):
            raise RuntimeError("chaos: own Redis did not start")

    def ping(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()


@dataclass
class Gateway:
    """A JSON SMS gateway on 127.0.0.1:<port 0>; `behave(n)` decides how it treats the n-th request."""

    received: list[tuple[str, str, float]] = field(default_factory=list)  # (to, text, when)
    requests: int = 0  # every request, answered 200 or not
    behave: Callable[[int], tuple[int, float]] = lambda _n: (200, 0.0)  # (status, seconds before answering)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with gateway.lock:
                    status, delay = gateway.behave(gateway.requests)
                    gateway.requests += 1
                    if status == 200:  # what a gateway accepted (a hung request counts: it may have gone out)
                        gateway.received.append((str(body["to"]), str(body["text"]), time.time()))
                if delay:
                    time.sleep(delay)
                payload = b'{"ok": true}' if status == 200 else b'{"error": "busy"}'
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/send"

    def reset(self, behave: Callable[[int], tuple[int, float]] | None = None) -> None:
        with self.lock:
            self.received = []
            self.requests = 0
            self.behave = behave or (lambda _n: (200, 0.0))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Worker:
    """`celery -A project worker` in its own process group (prefork, 2 processes)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"worker-{name}-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "celery", "-A", "project", "worker", "--loglevel", "INFO", "--pool"]
        command += ["prefork", "--concurrency", "2", "-n", f"{name}@chaos", "--without-gossip", "--without-mingle"]
        self.log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready(self) -> bool:
        return " ready." in self.log_path.read_text(encoding="utf-8", errors="replace")

    def pool_pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text(encoding="ascii")
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                        found.append(int(entry.name))
        return found

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        self.signal_group(signal.SIGCONT)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.log.close()


# --- the run ----------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    rows: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    duplicates: int = 0
    lost: int = 0
    seconds: float = 0.0
    late: float | None = None  # deferred rows: longest time from due to received
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.lost == 0 and (self.late is None or self.late <= 60)


class Chaos:
    def __init__(self, root: Path, rows: int, timeout: float) -> None:
        self.root, self.rows, self.timeout = root, rows, timeout
        self.pg = Postgres(root)
        self.redis = Redis(root)
        self.gateway = Gateway()
        self.workers: list[Worker] = []
        self.sweeping = threading.Event()
        self.env: dict[str, str] = {}

    # set-up and tear-down

    def start(self) -> None:
        self.pg.ctl("start")
        self.pg.create_database()
        self.redis.start()
        self.env = {
            **os.environ,
            "DATABASE_URL": self.pg.url,
            "REDIS_URL": self.redis.url,
            "CELERY_BROKER_URL": self.redis.url,
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_hex(32),
            "NOTIFIER_VAR_DIR": str(self.root / "var"),
            "NOTIFIER_CONFIG": json.dumps(NOTIFIER_CONFIG),
            **WORKER_SETTINGS,
        }
        os.environ.update(self.env)  # this process too: the sweeper, detection and enqueueing run here
        setup_django()
        import logging

        logging.getLogger("notifier").setLevel(logging.WARNING)  # the table is the output; workers log to files
        from django.core.management import call_command

        from notifier.demo import load_demo

        call_command("migrate", verbosity=0)
        load_demo(families=max(60, self.rows // 3), seed=12)
        self.workers = [self.start_worker("a"), self.start_worker("b")]
        self.wait_ready(self.workers)
        threading.Thread(target=self._sweeper, daemon=True).start()

    def stop(self) -> None:
        self.sweeping.set()
        for worker in self.workers:
            worker.stop()
        self.gateway.close()
        self.redis.stop()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            self.pg.ctl("stop", "-m", "immediate")

    def start_worker(self, name: str) -> Worker:
        return Worker(name, self.env, self.root)

    def wait_ready(self, workers: list[Worker]) -> None:
        if not wait_until(lambda: all(worker.ready() for worker in workers), 120):
            raise RuntimeError("chaos: the workers did not start")

    def _sweeper(self) -> None:
        """Stands in for beat: the sweep task every SWEEP_EVERY seconds, in this process (it enqueues to Redis)."""
        from django.db import connection

        from notifier.tasks import sweep_outbox

        while not self.sweeping.wait(SWEEP_EVERY):
            try:
                sweep_outbox()
            except Exception:
                connection.close()  # the database or Redis is being restarted: next tick

    # one scenario

    def reset(self, behave: Callable[[int], tuple[int, float]] | None = None, *, primary_down: bool = False) -> None:
        from django.db import connection

        from notifier import coordination
        from notifier.models import ProviderAccount

        self._db(lambda: None)
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE notifier_delivery_attempt, notifier_outbox, notifier_decision, notifier_detection_run, "
                "notifier_dispatcher_run, notifier_provider_account RESTART IDENTITY CASCADE"
            )
        coordination.reset()
        self.gateway.reset(behave)
        if primary_down:
            ProviderAccount.objects.create(
                name="primary (down)",
                provider="HttpJsonProvider",
                priority=5,
                config={"url": f"http://127.0.0.1:{free_port()}/send"},
            )
        ProviderAccount.objects.create(
            name="chaos gateway", provider="HttpJsonProvider", priority=10, config={"url": self.gateway.url}
        )

    def queue_rows(self, count: int) -> list[int]:
        from django.utils import timezone

        from notifier.models import Outbox, Policy
        from notifier.tasks import enqueue_delivery
        from notifier.types import NOTIFICATION_TYPES

        policies = list(
            Policy.objects.current()
            .filter(family__validity_to__isnull=True, family__head_insuree__isnull=False)
            .filter(status__in=[Policy.Status.ACTIVE, Policy.Status.EXPIRED], effective_date__isnull=False)
            .order_by("id")
            .values_list("id", "family_id")[: -(-count // 6)]
        )
        now = timezone.now()
        rows = [
            Outbox(
                policy_id=policies[index % len(policies)][0],
                family_id=policies[index % len(policies)][1],
                notification_type=NOTIFICATION_TYPES[index // len(policies)],
                event_date=timezone.localdate(),
                recipient=f"+25571{index:07d}",
                language="en",
                next_attempt_at=now,
                created_at=now,
            )
            for index in range(count)
        ]
        ids = [row.pk for row in Outbox.objects.bulk_create(rows)]
        enqueue_delivery(ids)
        return ids

    def _db(self, action: Callable[[], Any]) -> Any:
        """A query from this process, through a database restart: reconnect and try again for up to 30 s."""
        from django.db import DatabaseError, connection

        deadline = time.monotonic() + 30
        while True:
            try:
                return action()
            except DatabaseError:
                connection.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def unsettled(self) -> int:
        from notifier.models import Outbox

        return int(
            self._db(lambda: Outbox.objects.filter(status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING]).count())
        )

    def settle(self, started: float) -> None:
        wait_until(lambda: self.unsettled() == 0, max(1.0, self.timeout - (time.monotonic() - started)), step=0.5)
        time.sleep(0.5)  # a paused worker's late answer, an audit write

    def measure(self, name: str, started: float, expected: int | None = None, note: str = "") -> Outcome:
        from django.db.models import Count

        from notifier.models import Outbox

        statuses = dict(self._db(lambda: list(Outbox.objects.values_list("status").annotate(n=Count("id")))))
        with self.gateway.lock:
            received = list(self.gateway.received)
        per_message = Counter((to, text) for to, text, _at in received)
        per_recipient = Counter(to for to, _text, _at in received)
        sent_recipients = set(
            self._db(lambda: list(Outbox.objects.filter(status="sent").values_list("recipient", flat=True)))
        )
        total = sum(statuses.values())
        if statuses.get("failed"):
            reasons = self._db(
                lambda: Counter(Outbox.objects.filter(status="failed").values_list("last_error", flat=True))
            )
            note = "; ".join([note, *(f"failed: {error[:80]} ({n})" for error, n in reasons.most_common(2))]).strip(
                "; "
            )
        lost = statuses.get("pending", 0) + statuses.get("sending", 0)
        lost += len(sent_recipients - set(per_recipient))
        if expected is not None:
            lost += max(0, expected - total)
        return Outcome(
            scenario=name,
            rows=total,
            sent=statuses.get("sent", 0),
            failed=statuses.get("failed", 0),
            unknown=statuses.get("unknown", 0),
            duplicates=sum(count - 1 for count in per_message.values() if count > 1),
            lost=lost,
            seconds=round(time.monotonic() - started, 1),
            note=note,
        )

    def deferral_lateness(self) -> float | None:
        """For rows that were held back (due later than created): received - due, the longest."""
        from notifier.models import Outbox

        with self.gateway.lock:
            first_receipt = {to: at for to, _text, at in reversed(self.gateway.received)}
        rows = self._db(lambda: list(Outbox.objects.values_list("recipient", "created_at", "next_attempt_at")))
        late = [
            first_receipt[recipient] - due.timestamp()
            for recipient, created, due in rows
            if due > created + dt.timedelta(seconds=1) and recipient in first_receipt
        ]
        return round(max(late), 1) if late else None

    # the scenarios

    def run_simple(
        self,
        name: str,
        behave: Callable[[int], tuple[int, float]] | None = None,
        damage: Callable[[], str] | None = None,
        *,
        rows: int | None = None,
        primary_down: bool = False,
        deferrals: bool = False,
    ) -> Outcome:
        self.reset(behave, primary_down=primary_down)
        started = time.monotonic()
        self.queue_rows(rows or self.rows)
        note = damage() if damage else ""
        self.settle(started)
        outcome = self.measure(name, started, note=note)
        if deferrals:
            outcome.late = self.deferral_lateness()
        return outcome

    def midway(self, action: Callable[[], str]) -> Callable[[], str]:
        """Do `action` once the gateway has received a third of the rows (deliveries in flight), say when."""

        def damage() -> str:
            wait_until(lambda: len(self.gateway.received) >= self.rows // 3, 30, step=0.05)
            at = len(self.gateway.received)
            return f"{action()} (at {at}/{self.rows} received)"

        return damage

    def kill_pool_process(self) -> str:
        pids = self.workers[0].pool_pids()
        if not pids:
            return "no pool process found"
        os.kill(pids[0], signal.SIGKILL)
        return f"killed pool process {pids[0]}"

    def kill_worker(self) -> str:
        doomed = self.workers.pop(0)
        doomed.signal_group(signal.SIGKILL)
        doomed.stop()
        replacement = self.start_worker("a2" if doomed.name == "a" else "a")
        self.workers.append(replacement)
        self.wait_ready([replacement])
        return "killed a whole worker (process group), started another"

    def restart_redis(self) -> str:
        self.redis.stop()
        self.redis.start()
        return "Redis restarted empty (queued tasks lost)"

    def flush_redis(self) -> str:
        self.redis.flush()
        return "FLUSHALL"

    def restart_postgres(self) -> str:
        self.pg.ctl("restart", "-m", "fast")
        return "pg_ctl restart -m fast"

    def pause_worker(self) -> str:
        worker = self.workers[0]
        worker.signal_group(signal.SIGSTOP)
        time.sleep(LEASE_SECONDS + 2 * SWEEP_EVERY + 1)
        worker.signal_group(signal.SIGCONT)
        return f"SIGSTOP of a worker for {LEASE_SECONDS + 2 * SWEEP_EVERY + 1:.0f} s (lease {LEASE_SECONDS} s)"

    def run_dispatchers(self) -> Outcome:
        from django.utils import timezone

        from notifier.detection import run_all_detection
        from project.celery import app

        self.reset()
        today = timezone.localdate()
        expected = sum(result.queued for result in run_all_detection(today, dry_run=True))
        started = time.monotonic()
        commands = [
            subprocess.Popen(
                [sys.executable, "manage.py", "send_notifications", "--date", today.isoformat()],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        for _ in range(2):
            app.send_task("notifier.tasks.send_notification_messages", args=[today.isoformat()])
        for command in commands:
            command.wait(timeout=120)
        # A dispatcher run skipped by the lock leaves its rows to the next run: run once more, like the next tick.
        wait_until(lambda: self.unsettled() == 0, 30, step=0.5)
        app.send_task("notifier.tasks.send_notification_messages", args=[today.isoformat()])
        time.sleep(2)
        self.settle(started)
        return self.measure(
            "two dispatchers + two send_notifications",
            started,
            expected=expected,
            note=f"{expected} messages due by detection; commands exited {[c.returncode for c in commands]}",
        )


def scenarios(chaos: Chaos) -> Iterator[tuple[str, Callable[[], Outcome]]]:
    rows = chaos.rows
    fail_for = 4.0
    recovering_at = [0.0]

    def five_hundreds_then_ok(_n: int) -> tuple[int, float]:
        if not recovering_at[0]:
            recovering_at[0] = time.monotonic() + fail_for
        return (503, 0.0) if time.monotonic() < recovering_at[0] else (200, 0.01)

    name = "gateway 5xx for 4 s, then recovery"
    yield name, lambda: chaos.run_simple(name, five_hundreds_then_ok, deferrals=True)
    hanging = random.Random(1)
    yield (
        "hanging requests (1 in 8 answers after 6 s)",
        lambda: chaos.run_simple(
            "hanging requests (1 in 8 answers after 6 s)",
            lambda _n: (200, 6.0 if hanging.random() < 0.125 else 0.01),
        ),
    )
    slow = lambda _n: (200, 0.2)  # noqa: E731 - a chunk of 5 takes ~1 s: the damage lands mid-chunk
    yield (
        "kill -9 of a pool process",
        lambda: chaos.run_simple("kill -9 of a pool process", slow, chaos.midway(chaos.kill_pool_process)),
    )
    yield (
        "kill -9 of a whole worker",
        lambda: chaos.run_simple("kill -9 of a whole worker", slow, chaos.midway(chaos.kill_worker)),
    )
    yield "Redis restart", lambda: chaos.run_simple("Redis restart", slow, chaos.midway(chaos.restart_redis))
    yield "Redis FLUSHALL", lambda: chaos.run_simple("Redis FLUSHALL", slow, chaos.midway(chaos.flush_redis))
    yield (
        "PostgreSQL restart",
        lambda: chaos.run_simple("PostgreSQL restart", slow, chaos.midway(chaos.restart_postgres)),
    )
    yield (
        "worker paused (SIGSTOP) past its lease",
        lambda: chaos.run_simple("worker paused (SIGSTOP) past its lease", slow, chaos.midway(chaos.pause_worker)),
    )
    yield "two dispatchers + two send_notifications", chaos.run_dispatchers
    yield (
        "primary down, fallback account",
        lambda: chaos.run_simple("primary down, fallback account", primary_down=True),
    )

    def slower_than_the_lease() -> Outcome:
        from django.conf import settings

        size = settings.NOTIFIER_DELIVERY_CHUNK_SIZE
        settings.NOTIFIER_DELIVERY_CHUNK_SIZE = 10  # the chunks this process enqueues: 10 x 0.9 s > the 4 s lease
        try:
            return chaos.run_simple(
                "chunk slower than the lease (10 x 0.9 s, lease 4 s)", lambda _n: (200, 0.9), rows=min(rows, 40)
            )
        finally:
            settings.NOTIFIER_DELIVERY_CHUNK_SIZE = size

    yield "chunk slower than the lease", slower_than_the_lease
    breaker_failures = 3

    def open_breaker(n: int) -> tuple[int, float]:
        return (503, 0.0) if n < breaker_failures else (200, 0.01)

    yield (
        "open breaker: deferred rows",
        lambda: chaos.run_simple("open breaker: deferred rows", open_breaker, deferrals=True),
    )


def table(outcomes: list[Outcome]) -> list[str]:
    header = f"| {'scenario':<52} | rows | sent | failed | unknown | duplicates | lost | seconds | late (s) |"
    lines = [header, "|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|"]
    for o in outcomes:
        late = "-" if o.late is None else f"{o.late:.1f}"
        lines.append(
            f"| {o.scenario:<52} | {o.rows:>4} | {o.sent:>4} | {o.failed:>6} | {o.unknown:>7} | {o.duplicates:>10} "
            f"| {o.lost:>4} | {o.seconds:>7.1f} | {late:>8} |"
        )
    return lines


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delivery under failures, with servers of its own.")
    parser.add_argument("--quick", action="store_true", help="every scenario at small size (a few minutes)")
    parser.add_argument("--rows", type=int, help="rows per scenario (default 30 quick, 200 otherwise)")
    parser.add_argument("--timeout", type=float, help="seconds allowed per scenario (default 60 quick, 180)")
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    parser.add_argument("--json", help="write the results here (default bench/results/chaos.json)")
    args = parser.parse_args(argv)
    rows = args.rows or (30 if args.quick else 200)
    if rows < 6:
        parser.error("--rows: at least 6")
    timeout = args.timeout or (60.0 if args.quick else 180.0)
    started = time.monotonic()
    load_before = os.getloadavg()
    outcomes: list[Outcome] = []
    # Stopped from outside (a test's timeout, Ctrl-C from a shell that sends TERM): still stop the servers and
    # workers it started, through the `finally` below.
    signal.signal(signal.SIGTERM, _terminated)
    with tempfile.TemporaryDirectory(prefix="notifier-chaos-") as directory:
        chaos = Chaos(Path(directory), rows, timeout)
        try:
            chaos.start()
            for name, scenario in scenarios(chaos):
                if args.only and args.only.lower() not in name.lower():
                    continue
                outcome = scenario()
                outcomes.append(outcome)
                print(table([outcome])[-1] + (f"  {outcome.note}" if outcome.note else ""), flush=True)
        finally:
            chaos.stop()
    print()
    print("\n".join(table(outcomes)))
    failed = [outcome.scenario for outcome in outcomes if not outcome.ok]
    total = time.monotonic() - started
    print(f"\n{len(outcomes)} scenarios in {total:.0f} s; load average before {load_before[0]:.2f}")
    payload = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": args.quick,
        "rows": rows,
        "seconds": round(total, 1),
        "scenarios": [outcome.__dict__ | {"ok": outcome.ok} for outcome in outcomes],
    }
    print(f"results: {write_results('chaos', payload, args.json)}")
    if failed:
        print(f"FAILED (duplicates, lost rows or late deferrals): {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
