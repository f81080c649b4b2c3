"""Detection benchmark: our engine against an upstream-style baseline, on the same database and day.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench .venv/bin/python bench/detect.py --date 2026-11-28

Both run in their own child process (clean peak RSS), with all six types enabled, after the notifier's state
(outbox, decisions, detection runs, attempts) has been emptied, so the engine makes a first run (no obsolete scan).

**Engine**: `notifier.detection.run_all_detection(date)` for the six types, writing outbox rows and decisions as
in production. Reported: wall time, CPU time, SQL statements, peak RSS, per type the candidates in its due window
(queued / skipped by reason).

**Baseline** (bench/baseline.py): the upstream module's exact-date triggers rebuilt on our models, and the corrected
set derived from the same rows, which must equal the engine's same-day decisions. **Floor** (bench/floor.py): one
hand-written INSERT ... SELECT per type writing the engine's rows. **Upstream live** (bench/upstream_live.py):
upstream's scheduled task as its code runs, once per provider.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, count_queries, cpu_seconds, machine, peak_rss_mb, setup_django, write_results
from bench.baseline import compare, run_baseline
from bench.floor import run_floor, written_rows
from bench.upstream_live import compare_live, run_upstream_live
from notifier.types import NOTIFICATION_TYPES

TYPES = NOTIFICATION_TYPES
ALL_ENABLED = {"eligibleNotificationTypes": dict.fromkeys(TYPES, True)}
NOTIFIER_STATE_TABLES = ("notifier_delivery_attempt", "notifier_outbox", "notifier_decision", "notifier_detection_run")


# --- engine ------------------------------------------------------------------------------------------------------


def run_engine(day: dt.date) -> dict[str, Any]:
    """Our detection for the six types on `day`; figures only (the decisions stay in the database)."""
    from notifier.detection import run_all_detection

    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with count_queries() as queries:
        results = run_all_detection(day, types=list(TYPES))
    seconds = time.perf_counter() - started
    per_type = {
        result.notification_type: {
            "window": [result.window_start.isoformat(), result.window_end.isoformat()],
            "queued": result.queued,
            "skipped": result.skipped,
            "candidates": result.queued + sum(result.skipped.values()),
        }
        for result in results
    }
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "queries": queries["total"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "types": per_type,
    }


def engine_decisions(day: dt.date) -> dict[str, dict[str, list[int]]]:
    """Per type, the engine's candidates with event date == day (all decisions) and the queued ones."""
    from notifier.models import Decision

    sets: dict[str, dict[str, list[int]]] = {name: {"candidates": [], "queued": []} for name in TYPES}
    rows = Decision.objects.filter(event_date=day).values_list("notification_type", "policy_id", "outcome")
    for notification_type, policy_id, outcome in rows.iterator():
        sets[notification_type]["candidates"].append(policy_id)
        if outcome == Decision.Outcome.QUEUED:
            sets[notification_type]["queued"].append(policy_id)
    return sets


# --- orchestration ---------------------------------------------------------------------------------------------


def reset_notifier_state() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses tables with deferred checks pending
        cursor.execute(f"TRUNCATE {', '.join(NOTIFIER_STATE_TABLES)} RESTART IDENTITY CASCADE")


def warm_up() -> None:
    """Read the tables once so that neither side pays for a cold cache."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("tblPolicy", "tblFamilies", "tblFamilySMS", "tblProduct", "notifier_family_phone"):
            cursor.execute(f'SELECT count(*) FROM "{table}"')


def _child(role: str, day: dt.date, out: str, sample: int | None, seed: int, cover_windows: bool) -> int:
    os.environ["NOTIFIER_CONFIG"] = json.dumps(ALL_ENABLED)
    setup_django()
    if role == "floor":
        figures = run_floor(day)
    elif role == "live":
        figures = run_upstream_live(day)
    elif role == "engine":
        figures = run_engine(day)
    else:
        figures = run_baseline(day, sample, seed, cover_windows=cover_windows)
    Path(out).write_text(json.dumps(figures, default=str), encoding="utf-8")
    return 0


def _spawn(
    role: str, day: dt.date, sample: int | None, seed: int, timeout: float, cover_windows: bool
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix=f"bench-detect-{role}-", suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", role, "--date", day.isoformat()]
        command += ["--out", out, "--seed", str(seed)]
        if sample is not None:
            command += ["--baseline-sample", str(sample)]
        if not cover_windows:
            command += ["--same-day-baseline-only"]
        subprocess.run(command, check=True, timeout=timeout, cwd=ROOT)
        result: dict[str, Any] = json.loads(Path(out).read_text(encoding="utf-8"))
        return result
    finally:
        Path(out).unlink(missing_ok=True)


def benchmark(
    day: dt.date,
    *,
    sample: int | None = None,
    seed: int = 1,
    timeout: float = 3600,
    cover_windows: bool = True,
    in_process: bool = False,
) -> dict[str, Any]:
    """The whole benchmark. in_process=True runs both sides here (for the test suite: test database, no RSS)."""
    from django.db import connection

    reset_notifier_state()
    warm_up()
    # The floor first, then the engine on an emptied state again: both write the same rows, compared below.
    if in_process:
        floor = run_floor(day)
    else:
        connection.close()  # the children open their own connections; ours would only hold locks
        floor = _spawn("floor", day, sample, seed, timeout, cover_windows)
    floor_rows = written_rows()
    reset_notifier_state()
    if in_process:
        engine = run_engine(day)
        engine_rows = written_rows()
        baseline = run_baseline(day, sample, seed, cover_windows=cover_windows)
        live = run_upstream_live(day)
    else:
        connection.close()
        engine = _spawn("engine", day, sample, seed, timeout, cover_windows)
        engine_rows = written_rows()
        connection.close()
        baseline = _spawn("baseline", day, sample, seed, timeout, cover_windows)
        live = _spawn("live", day, sample, seed, timeout, cover_windows)
    live_comparison = compare_live(live)
    engine_sets = engine_decisions(day)
    agreement = compare(engine_sets, baseline)
    baseline_seconds = baseline["extrapolated_seconds"] if baseline["sampled"] else baseline["seconds"]
    with connection.cursor() as cursor:
        cursor.execute('SELECT count(*), count(*) FILTER (WHERE "ValidityTo" IS NULL) FROM "tblPolicy"')
        policies, current = cursor.fetchone()
        cursor.execute('SELECT count(*) FROM "tblFamilies"')
        families = cursor.fetchone()[0]
    for figures in baseline["types"].values():  # the id lists were for the comparison only
        for key in ("upstream_sent", "corrected_candidates", "corrected_queued", "upstream_candidates"):
            figures[f"{key}_count"] = len(figures.pop(key))
        figures.pop("examined_ids", None)
    return {
        "date": day.isoformat(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": {"families": families, "policies": policies, "current_policies": current},
        "engine": engine,
        "baseline": baseline,
        "agreement": agreement,
        "all_agree": all(entry["agree"] for entry in agreement.values()) and floor_rows == engine_rows,
        "floor": floor,
        "upstream_live": live,
        "upstream_live_messages": live_comparison,
        "speedup_live": round(live["seconds"] / engine["seconds"], 2) if engine["seconds"] else None,
        "live_to_floor": round(live["seconds"] / floor["seconds"], 2) if floor["seconds"] else None,
        "floor_rows": floor_rows,
        "engine_rows": engine_rows,
        "floor_agrees": floor_rows == engine_rows,
        "engine_to_floor": round(engine["seconds"] / floor["seconds"], 2) if floor["seconds"] else None,
        "engine_to_floor_cpu": (
            round(engine["cpu_seconds"] / floor["cpu_seconds"], 2) if floor["cpu_seconds"] else None
        ),
        "speedup": round(baseline_seconds / engine["seconds"], 2) if engine["seconds"] else None,
        "speedup_same_coverage": (
            round(baseline["window_seconds"] / engine["seconds"], 2)
            if engine["seconds"] and "window_seconds" in baseline
            else None
        ),
    }


def _print(result: dict[str, Any]) -> None:
    engine, baseline = result["engine"], result["baseline"]
    database = result["database"]
    print(
        f"database: {database['families']:,} families, {database['policies']:,} policies "
        f"({database['current_policies']:,} current); date {result['date']}"
    )
    print(
        f"engine:   {engine['seconds']:.2f} s wall, {engine['cpu_seconds']:.2f} s CPU, {engine['queries']} queries, "
        f"peak RSS {engine['peak_rss_mb']:.0f} MiB"
    )
    floor = result["floor"]
    print(
        f"floor:    {floor['seconds']:.2f} s wall, {floor['cpu_seconds']:.2f} s CPU (client), {floor['queries']} "
        f"hand-written INSERT ... SELECT; engine / floor = {result['engine_to_floor']}x wall; same rows written: "
        f"{result['floor_agrees']}"
    )
    if not result["floor_agrees"]:
        print(f"          floor wrote {result['floor_rows']}\n          engine wrote {result['engine_rows']}")
    live = result["upstream_live"]
    print(
        f"upstream live paths ({live['providers']} providers, first run): {live['seconds']:.2f} s "
        f"(measured {live['measured_seconds']:.2f} s, writes extrapolated), {live['queries']:,} statements; "
        f"{result['speedup_live']}x the engine, {result['live_to_floor']}x the floor"
    )
    for notification_type, counts in result["upstream_live_messages"].items():
        print(
            f"  {notification_type:<27} engine queues {counts['engine_queued']:>6,}; upstream sends "
            f"{counts['upstream_messages']:>7,} of which {counts['upstream_not_due']:>6,} not due by our rules and "
            f"{counts['upstream_provider_repeats']:>6,} per-provider repeats; it misses "
            f"{counts['engine_queued_upstream_misses']:,} of ours (other days of the window)"
        )
    sampled = " (sampled; extrapolated)" if baseline["sampled"] else ""
    print(
        f"baseline: {baseline['seconds']:.2f} s wall{sampled} -> {baseline['extrapolated_seconds']:.2f} s, "
        f"{baseline['queries']} queries, peak RSS {baseline['peak_rss_mb']:.0f} MiB"
    )
    if "window_seconds" in baseline:
        print(
            f"baseline over the engine's due windows (one run per day): {baseline['window_seconds']:.2f} s, "
            f"{baseline['window_queries']} queries"
        )
    print(
        f"speedup:  {result['speedup']}x against the same-day baseline"
        + (
            f", {result['speedup_same_coverage']}x against the baseline covering the same windows"
            if result["speedup_same_coverage"] is not None
            else ""
        )
        + f"; corrected same-day sets agree: {result['all_agree']}"
    )
    header = f"{'type':<27}{'window':>24}{'queued':>8}{'skipped':>9}{'same-day ours/base':>20}{'upstream':>10}"
    print(header)
    for notification_type in TYPES:
        figures = engine["types"][notification_type]
        agreement = result["agreement"][notification_type]
        window = "..".join(figures["window"])
        same_day = f"{agreement['engine_same_day_queued']}/{agreement['baseline_corrected_queued']}"
        same_day += "" if agreement["agree"] else " DIFFER"
        print(
            f"{notification_type:<27}{window:>24}{figures['queued']:>8}{sum(figures['skipped'].values()):>9}"
            f"{same_day:>20}{agreement['upstream_would_send']:>10}"
        )
        if agreement["upstream_vs_corrected_candidates"]:
            print(f"{'':<27}upstream differs: {agreement['upstream_vs_corrected_candidates']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Detection benchmark: engine vs upstream-style baseline.")
    parser.add_argument("--date", help="scheme day (YYYY-MM-DD); default: the day bench/generate.py used")
    parser.add_argument("--baseline-sample", type=int, help="check only N expiring policies per type; extrapolate")
    parser.add_argument("--seed", type=int, default=1, help="seed of the baseline sample")
    parser.add_argument(
        "--same-day-baseline-only", action="store_true", help="do not time the baseline over the due windows"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each side")
    parser.add_argument("--json", help="write the result here (default bench/results/detect.json)")
    parser.add_argument("--child", choices=["floor", "engine", "baseline", "live"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_sample is not None and args.baseline_sample < 1:
        parser.error("--baseline-sample: must be at least 1")

    day = None
    if args.date:
        try:
            day = dt.date.fromisoformat(args.date)
        except ValueError:
            parser.error(f"--date: expected YYYY-MM-DD, got {args.date!r}")
    if args.child:
        assert day is not None and args.out
        return _child(args.child, day, args.out, args.baseline_sample, args.seed, not args.same_day_baseline_only)

    setup_django()
    from bench.generate import generated_metadata

    if day is None:
        metadata = generated_metadata()
        if metadata is None:
            parser.error("--date: no date given and the database was not made by bench/generate.py")
        day = dt.date.fromisoformat(metadata["date"])
    result = benchmark(
        day,
        sample=args.baseline_sample,
        seed=args.seed,
        timeout=args.timeout,
        cover_windows=not args.same_day_baseline_only,
    )
    _print(result)
    print(f"results: {write_results('detect', result, args.json)}")
    return 0 if result["all_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
