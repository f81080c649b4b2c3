"""One chaos scenario of bench/chaos.py at a time: its servers started, the notifier's tables emptied, rows queued as
detection queues them, the damage done, the outcome counted (sent, failed, unknown, duplicates, lost, late)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import ROOT, setup_django
from bench.chaos_servers import Postgres, Redis, Worker, free_port, wait_until
from bench.gateways import JsonGateway
from notifier.types import NOTIFICATION_TYPES

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
    "eligibleNotificationTypes": dict.fromkeys(NOTIFICATION_TYPES, True),
    "rate_limit_per_second": 1000.0,
    "max_attempts": 10,
    "http_connect_timeout_seconds": 1.0,
    "http_read_timeout_seconds": 3.0,
    "circuit_breaker": {"failure_threshold": 3, "window_seconds": 30, "cooldown_seconds": 5},
    # Measured at any hour: the default quiet hours (20:00-08:00) would hold every message until the morning.
    "quiet_hours": None,
}


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
        self.gateway = JsonGateway()
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

        from notifier.delivery.handoff import enqueue_delivery
        from notifier.models import Outbox, Policy
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
