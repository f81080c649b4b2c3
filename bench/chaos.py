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
import datetime as dt
import functools
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, write_results
from bench.chaos_run import Chaos, Outcome


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
    midway_damages = (
        ("kill -9 of a pool process", chaos.kill_pool_process),
        ("kill -9 of a whole worker", chaos.kill_worker),
        ("Redis restart", chaos.restart_redis),
        ("Redis FLUSHALL", chaos.flush_redis),
        ("PostgreSQL restart", chaos.restart_postgres),
        ("worker paused (SIGSTOP) past its lease", chaos.pause_worker),
    )
    for damage_name, action in midway_damages:
        yield damage_name, functools.partial(chaos.run_simple, damage_name, slow, chaos.midway(action))
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
            # A second signal (Ctrl-C, then the caller's TERM) must not cut the clean-up short: that would leave
            # the PostgreSQL, Redis and workers of this run behind.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
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
