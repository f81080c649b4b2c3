"""Delivery benchmark: N queued messages through real Celery workers on Redis to a fake eGA gateway on loopback.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/deliver.py --messages 20000

What it does, in order:
1. starts a fake eGA SMS gateway (bench.gateways.EgaGateway: one thread, a selector over non-blocking sockets, on
   127.0.0.1, port 0) that checks each request's HMAC the way the real one does and records recipient, text and the
   moment it arrived;
2. empties the notifier's state (outbox, attempts, decisions, detection runs, provider accounts), creates one eGA
   provider account pointing at the gateway with the rate limit off (10^9 per second: admission never waits, the
   shared Redis check still runs) and N pending outbox rows for current policies of the database, each with its
   own recipient (so the gateway can tell them apart); texts are left empty: the workers render them;
3. starts the Celery workers (`celery -A project worker`, prefork, --concurrency C, own queue) and waits until
   they are ready;
4. enqueues the rows the way notifier.tasks does after detection: `deliver_outbox_chunk` tasks of
   NOTIFIER_DELIVERY_CHUNK_SIZE ids (notifier.delivery.handoff.split), noting when each was enqueued; with
   --enqueue-rate, a batch of --batch rows (default NOTIFIER_DELIVERY_CHUNK_SIZE) at a time, handed off the same
   way (a batch that small is cut into SPREAD chunks);
5. waits until the gateway has received N messages and no row is pending or sending (bounded by --timeout),
   reads the workers' CPU time, stops the workers (SIGTERM, then SIGKILL of their process group) and the gateway.

Reported: messages per second from the first enqueue to the last receipt, CPU ms per message (the workers;
also the bench process, which runs the gateway, and the whole machine), p50/p99 latency from enqueue to receipt,
and the exactly-once check: every row `sent`, exactly one successful attempt per row, and the gateway received
each recipient exactly once and nothing else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_seconds, machine, setup_django, write_results
from bench.gateways import GATEWAY_KEY, EgaGateway
from bench.workers import Workers, machine_busy_seconds, machine_steal_seconds

GATEWAY_USER = "bench"
NOTIFIER_STATE_TABLES = (
    "notifier_delivery_attempt",
    "notifier_outbox",
    "notifier_decision",
    "notifier_detection_run",
    "notifier_provider_account",
)
LANGUAGES = ("sw", "en", "fr")


# --- the database side ------------------------------------------------------------------------------------------


def recipient_for(index: int) -> str:
    """A distinct, valid Tanzanian mobile number per message (+255 71x xxx xxx)."""
    return f"+25571{index:07d}"


def prepare(messages: int, gateway_url: str, day: dt.date) -> list[int]:
    """Empty the notifier's state, create the gateway account and `messages` pending rows. Returns their ids."""
    from django.db import connection
    from django.utils import timezone

    from notifier import coordination
    from notifier.models import Outbox, Policy, ProviderAccount
    from notifier.types import NOTIFICATION_TYPES

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses tables with deferred checks pending
        cursor.execute(f"TRUNCATE {', '.join(NOTIFIER_STATE_TABLES)} RESTART IDENTITY CASCADE")
    coordination.reset()
    ProviderAccount.objects.create(
        name="bench fake eGA",
        provider="eGASMSGateway",
        priority=10,
        enabled=True,
        rate_limit_per_second=1e9,
        config={
            "GateUrl": gateway_url,
            "SmsResource": "/api/sms",
            "PrivateKey": GATEWAY_KEY,
            "UserId": GATEWAY_USER,
            "SenderId": "CHF",
            "ServiceId": "42",
            "RequestType": "api",
        },
    )
    per_type = -(-messages // len(NOTIFICATION_TYPES))
    policies = list(
        Policy.objects.current()
        .filter(family__validity_to__isnull=True, family__head_insuree__isnull=False)
        .filter(status__in=[Policy.Status.ACTIVE, Policy.Status.EXPIRED], effective_date__isnull=False)
        .order_by("id")
        .values_list("id", "family_id")[:per_type]
    )
    if not policies:
        raise SystemExit("error: the database has no current policy; run bench/generate.py first")
    now = timezone.now()
    rows = []
    if messages > len(policies) * len(NOTIFICATION_TYPES):
        raise SystemExit(f"error: --messages {messages} needs at least {per_type} current policies")
    for index in range(messages):
        policy_id, family_id = policies[index % len(policies)]
        notification_type = NOTIFICATION_TYPES[index // len(policies)]
        rows.append(
            Outbox(
                policy_id=policy_id,
                family_id=family_id,
                notification_type=notification_type,
                event_date=day,
                recipient=recipient_for(index),
                language=LANGUAGES[index % len(LANGUAGES)],
                status=Outbox.Status.PENDING,
                next_attempt_at=now,
                created_at=now,
            )
        )
    created = Outbox.objects.bulk_create(rows, batch_size=5000)
    return [row.pk for row in created]


def outcome_counts() -> dict[str, Any]:
    from django.db.models import Count

    from notifier.models import DeliveryAttempt, Outbox

    statuses = dict(Outbox.objects.values_list("status").annotate(n=Count("id")).order_by())
    successes = (
        DeliveryAttempt.objects.filter(outcome=DeliveryAttempt.Outcome.SUCCESS)
        .values("outbox_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_row = Counter(entry["n"] for entry in successes)
    attempts = dict(DeliveryAttempt.objects.values_list("outcome").annotate(n=Count("id")).order_by())
    return {"statuses": statuses, "success_attempts_per_row": dict(per_row), "attempts": attempts}


def unfinished() -> int:
    from notifier.models import Outbox

    return Outbox.objects.filter(status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING]).count()


# --- the run --------------------------------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def database_url() -> str:
    """The default database as a URL, for the worker processes (in the test suite: the test database)."""
    from urllib.parse import quote

    from django.conf import settings

    database = settings.DATABASES["default"]
    user = quote(str(database.get("USER") or ""), safe="")
    password = quote(str(database.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{quote(str(database['NAME']), safe='')}"


def _forget_queue(broker_url: str, queue: str) -> None:
    """Leave nothing of this run's queue in Redis (kombu keeps its bindings under these keys)."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    finally:
        client.close()


def benchmark(
    messages: int,
    concurrency: int,
    timeout: float,
    *,
    broker_url: str | None = None,
    day: dt.date | None = None,
    enqueue_rate: float | None = None,
    batch: int | None = None,
) -> dict[str, Any]:
    """Deliver `messages` rows; `enqueue_rate` (messages per second) paces the enqueueing, default all at once, in
    batches of `batch` rows handed off together (default NOTIFIER_DELIVERY_CHUNK_SIZE)."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from notifier.delivery.handoff import chunk_size, deliver_outbox_chunk, split
    from project.celery import app

    broker_url = broker_url or settings.CELERY_BROKER_URL
    if broker_url.startswith("memory://") or not settings.REDIS_URL:
        raise SystemExit("error: REDIS_URL and a Redis broker are needed: the workers run on Redis")
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    day = day or timezone.localdate()
    with EgaGateway() as gateway, tempfile.TemporaryDirectory(prefix="bench-deliver-") as directory:
        ids = prepare(messages, gateway.url, day)
        recipients = {recipient_for(index).lstrip("+"): outbox_id for index, outbox_id in enumerate(ids)}
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_hex(32),
            "REDIS_URL": settings.REDIS_URL,
            # Throughput is measured at any hour: the quiet hours (20:00-08:00) would hold every message.
            "NOTIFIER_CONFIG": json.dumps(
                {**json.loads(os.environ.get("NOTIFIER_CONFIG") or "{}"), "quiet_hours": None}
            ),
        }
        connection.close()
        workers = Workers(concurrency, queue, Path(directory), env)
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = False  # the test suite runs eagerly; here the tasks must go to Redis
        try:
            workers.wait_ready(timeout=min(timeout, 120))
            worker_cpu_before = workers.cpu_seconds()
            bench_cpu_before, machine_before = cpu_seconds(), machine_busy_seconds()
            steal_before = machine_steal_seconds()
            size = chunk_size()
            enqueued_at: dict[int, float] = {}
            # All at once: one batch, handed off as detection hands off its rows. Paced: a batch of `batch` rows
            # at a time, each when the rate allows, handed off the same way (a small batch is cut in SPREAD).
            step = batch or size
            batches = [ids[start : start + step] for start in range(0, len(ids), step)] if enqueue_rate else [ids]
            with app.connection_for_write(broker_url) as broker, broker.Producer() as producer:
                started, done = time.time(), 0
                for handed in batches:
                    if enqueue_rate:  # the batch's turn: as many messages before it as the rate allows by now
                        time.sleep(max(0.0, started + done / enqueue_rate - time.time()))
                    moment = time.time()
                    for chunk in split(handed):
                        deliver_outbox_chunk.apply_async(args=(chunk,), queue=queue, producer=producer)
                    for outbox_id in handed:
                        enqueued_at[outbox_id] = moment
                    done += len(handed)
            enqueue_seconds = time.time() - started
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if gateway.count() >= messages and unfinished() == 0:
                    break
                if unfinished() == 0:  # every row is final, some not sent: nothing more will arrive
                    time.sleep(0.5)
                    break
                time.sleep(0.25)
            timed_out = time.monotonic() >= deadline
            worker_cpu = workers.cpu_seconds() - worker_cpu_before
            bench_cpu, machine_busy = cpu_seconds() - bench_cpu_before, machine_busy_seconds() - machine_before
            steal = machine_steal_seconds() - steal_before
        finally:
            app.conf.task_always_eager = eager
            workers.stop()
            _forget_queue(broker_url, queue)
        worker_log_tail = workers.tail(10)

    received = list(gateway.received)
    per_recipient = Counter(recipient for recipient, _message, _at in received)
    unknown_recipients = [recipient for recipient in per_recipient if recipient not in recipients]
    latencies = [
        arrived - enqueued_at[recipients[recipient]]
        for recipient, _message, arrived in received
        if recipient in recipients
    ]
    last_receipt = max((arrived for _r, _m, arrived in received), default=started)
    elapsed = last_receipt - started
    outcomes = outcome_counts()
    exactly_once = (
        len(received) == messages
        and not unknown_recipients
        and all(count == 1 for count in per_recipient.values())
        and outcomes["statuses"] == {"sent": messages}
        and outcomes["success_attempts_per_row"] == {1: messages}
        and gateway.rejected == 0
    )
    delivered = len(received)
    return {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "messages": messages,
        "concurrency": concurrency,
        "chunk_size": size,
        "enqueue_rate": enqueue_rate,
        "batch": (batch or size) if enqueue_rate else messages,
        "timed_out": timed_out,
        "enqueue_seconds": round(enqueue_seconds, 3),
        "seconds": round(elapsed, 3),
        "messages_per_second": round(delivered / elapsed, 1) if elapsed > 0 else None,
        "worker_cpu_ms_per_message": round(worker_cpu * 1000 / delivered, 2) if delivered else None,
        "bench_process_cpu_ms_per_message": round(bench_cpu * 1000 / delivered, 2) if delivered else None,
        "machine_cpu_ms_per_message": round(machine_busy * 1000 / delivered, 2) if delivered else None,
        # Until 2026-12-01 "whole machine" counted steal too; add it back to compare with the older figures.
        "steal_ms_per_message": round(steal * 1000 / delivered, 2) if delivered else None,
        "latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "latency_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "gateway_received": delivered,
        "gateway_duplicates": sum(count - 1 for count in per_recipient.values() if count > 1),
        "gateway_unknown_recipients": len(unknown_recipients),
        "gateway_rejected": gateway.rejected,
        "outcomes": outcomes,
        "exactly_once": exactly_once,
        "worker_log_tail": worker_log_tail if not exactly_once else "",
    }


def _without_quiet_hours() -> str:
    return json.dumps({**json.loads(os.environ.get("NOTIFIER_CONFIG") or "{}"), "quiet_hours": None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delivery benchmark: Celery workers on Redis to a fake eGA gateway.")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--concurrency", type=int, default=os.cpu_count() or 2, help="worker processes (prefork pool); default: CPUs"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed for the delivery")
    parser.add_argument(
        "--enqueue-rate", type=float, help="enqueue at this many messages per second (default: all at once)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        help="with --enqueue-rate: rows handed off together (default NOTIFIER_DELIVERY_CHUNK_SIZE)",
    )
    parser.add_argument("--json", help="write the result here (default bench/results/deliver.json)")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages: must be at least 1")
    if args.concurrency < 1:
        parser.error("--concurrency: must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout: must be positive")
    if args.batch is not None and (args.batch < 1 or args.enqueue_rate is None):
        parser.error("--batch: a positive number of rows, with --enqueue-rate")
    if args.enqueue_rate is not None and args.enqueue_rate <= 0:
        parser.error("--enqueue-rate: must be positive")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        parser.error("REDIS_URL: set it (e.g. redis://127.0.0.1:6379/7); the workers need Redis")
    os.environ.setdefault("CELERY_BROKER_URL", redis_url)
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_hex(32))  # a process with a broker needs its own
    setup_django()

    result = benchmark(args.messages, args.concurrency, args.timeout, enqueue_rate=args.enqueue_rate, batch=args.batch)
    pace = f"at {args.enqueue_rate:g} msg/s in batches of {result['batch']}" if args.enqueue_rate else "all at once"
    print(
        f"{result['gateway_received']:,}/{result['messages']:,} messages in {result['seconds']:.2f} s: "
        f"{result['messages_per_second']} msg/s with {result['concurrency']} worker processes "
        f"(chunks of {result['chunk_size']}, enqueued {pace}); "
        f"CPU per message: workers {result['worker_cpu_ms_per_message']} ms, "
        f"bench process (gateway) {result['bench_process_cpu_ms_per_message']} ms, "
        f"whole machine {result['machine_cpu_ms_per_message']} ms (and {result['steal_ms_per_message']} ms the "
        "hypervisor kept the CPUs from running, not counted)"
    )
    print(
        f"latency enqueue -> gateway: p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms, "
        f"max {result['latency_max_ms']} ms"
    )
    print(
        f"exactly once: {result['exactly_once']} (duplicates {result['gateway_duplicates']}, unknown "
        f"{result['gateway_unknown_recipients']}, rejected {result['gateway_rejected']}, outcomes {result['outcomes']})"
    )
    if result["timed_out"]:
        print(f"TIMED OUT after {args.timeout:.0f} s; worker log:\n{result['worker_log_tail']}")
    print(f"results: {write_results('deliver', result, args.json)}")
    return 0 if result["exactly_once"] and not result["timed_out"] else 1


if __name__ == "__main__":
    sys.exit(main())
