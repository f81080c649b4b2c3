"""Detection attached to an openIMIS-schema database of the benchmark's size, without and with the recommended
indexes (notifier.openimis_indexes).

    .venv/bin/python bench/attached.py --source-url postgres://postgres@127.0.0.1:5432/notifier_bench \\
        --target openimis_bench                       # --date defaults to the generated day

1. load: a new database `--target` gets the openIMIS schema (../shared/openimis/00_schema.sql, 01_django.sql),
   then the rows of a scheme made by bench/generate.py (`--source-url`) are streamed over with COPY, mapped onto
   openIMIS's columns: AuditUserID and openIMIS's other NOT NULL columns filled, tblFamilySMS in its lower-case
   spelling (history rows included), foreign keys not checked during the load (session_replication_role), ANALYZE.
2. attach: a role with exactly the README's grants, `migrate` and `check --database default` as that role.
3. detect, in a child process as that role (OPENIMIS_MODE=attached): all six types for the day, the notifier's
   state emptied first; then `openimis_indexes --apply` as the owner, ANALYZE, and the same detection again.
Prints and writes bench/results/attached.json; the database and role are left for inspection unless --drop.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import machine, write_results  # noqa: E402

SCHEMA_DIR = Path(os.environ.get("OPENIMIS_SCHEMA_DIR", ROOT.parent / "shared" / "openimis"))
PASSWORD = "bench"  # noqa: S105 - a local benchmark role


def role_for(target: str) -> str:
    """The service's role for one target database: named after it, so that two runs on one machine never share it."""
    return f"{target}_service"[:63]


# openIMIS NOT NULL columns the service's own tables lack (or allow NULL in): what the load puts there.
FILLS: dict[str, dict[str, str]] = {
    "tblLocations": {"AuditUserID": "1"},
    "tblOfficer": {"AuditUserID": "1"},
    "tblProduct": {
        "AuditUserID": "1",
        "DateFrom": "'2000-01-01'::timestamptz",
        "DateTo": "'2100-01-01'::timestamptz",
        "LumpSum": "10000",
        "MemberCount": "6",
        "GracePeriod": "0",
        "InsurancePeriod": "12",
    },
    "tblFamilies": {"AuditUserID": "1", "InsureeID": 'coalesce("InsureeID", 0)'},
    "tblInsuree": {"AuditUserID": "1", "CardIssued": "false", "DOB": "coalesce(\"DOB\", '1980-01-01')"},
    "tblPolicy": {"AuditUserID": "1"},
}
TABLES = ("tblLanguages", "tblLocations", "tblOfficer", "tblProduct", "tblFamilies", "tblInsuree", "tblPolicy")


def url_for(base: str, name: str, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(base)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}:{password}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, f"/{name}", "", ""))


def columns_of(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [f'public."{table}"'],
    ).fetchall()
    return [name for (name,) in rows]


def load(source_url: str, target_url: str, admin_url: str, target: str, log: Any) -> dict[str, float]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    for name, stop in (("00_schema.sql", "1"), ("01_django.sql", "0")):
        subprocess.run(
            ["psql", target_url, "-q", "-v", f"ON_ERROR_STOP={stop}", "-f", str(SCHEMA_DIR / name)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    timings["schema_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(source_url) as src, psycopg.connect(target_url) as dst:
        dst.execute("SET session_replication_role = replica")  # the FKs are openIMIS's; the source is consistent
        for table in (*TABLES, "tblFamilySMS"):
            theirs = columns_of(dst, table)
            ours = {name.lower(): name for name in columns_of(src, table)}
            fills = FILLS.get(table, {})
            target_columns, expressions = [], []
            for column in theirs:
                if column in fills:
                    expressions.append(fills[column])
                elif column.lower() in ours:
                    expressions.append(f'"{ours[column.lower()]}"')
                else:
                    continue
                target_columns.append(column)
            select = f'COPY (SELECT {", ".join(expressions)} FROM public."{table}") TO STDOUT'
            quoted = ", ".join(f'"{column}"' for column in target_columns)
            insert = f'COPY public."{table}" ({quoted}) FROM STDIN'
            rows_started = time.perf_counter()
            with src.cursor().copy(select.encode()) as out, dst.cursor().copy(insert.encode()) as into:
                for data in out:
                    into.write(data)
            count = dst.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))).fetchone()
            print(f"  {table}: {count[0] if count else 0} rows in {time.perf_counter() - rows_started:.1f} s", file=log)
        dst.commit()
    timings["copy_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with psycopg.connect(target_url, autocommit=True) as dst:
        dst.execute("ANALYZE")
    timings["analyze_s"] = time.perf_counter() - started
    return timings


def grant(target_url: str, role: str) -> None:
    from notifier.attached_checks import least_privilege_sql  # needs Django set up (the models list the tables)

    with psycopg.connect(target_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        for statement in least_privilege_sql(role):
            if exists and statement.startswith("CREATE ROLE"):
                continue
            conn.execute(statement.replace("'change-me'", f"'{PASSWORD}'").encode())


def manage(url: str, *args: str, extra: dict[str, str] | None = None) -> str:
    environment = {**os.environ, "DATABASE_URL": url, "OPENIMIS_MODE": "attached", **(extra or {})}
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


CHILD = """
import json, sys, time
from bench._common import setup_django, peak_rss_mb
setup_django()
import datetime as dt
from django.db import connection
from notifier.types import NOTIFICATION_TYPES
from notifier.detection import run_all_detection
day = dt.date.fromisoformat(sys.argv[1])
with connection.cursor() as cursor:
    cursor.execute("TRUNCATE notifier_decision, notifier_delivery_attempt, notifier_outbox, notifier_detection_run "
                   "RESTART IDENTITY CASCADE")
started = time.perf_counter()
results = run_all_detection(day, types=list(NOTIFICATION_TYPES))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(),
                  "types": {r.notification_type: {"queued": r.queued, "skipped": sum(r.skipped.values())}
                            for r in results}}))
"""


PHONES = """
import json, time
from bench._common import setup_django
setup_django()
from notifier.phones import refresh_family_phones
started = time.perf_counter()
written = refresh_family_phones()
print(json.dumps({"family_phones": written, "seconds": time.perf_counter() - started}))
"""


def child(url: str, code: str, *args: str) -> dict[str, Any]:
    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "OPENIMIS_MODE": "attached",
        "NOTIFIER_CONFIG": json.dumps({"eligibleNotificationTypes": dict.fromkeys(_types(), True)}),
    }
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"child failed:\n{result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def detect(url: str, day: dt.date) -> dict[str, Any]:
    return child(url, CHILD, day.isoformat())


def _types() -> list[str]:
    from notifier.types import NOTIFICATION_TYPES

    return list(NOTIFICATION_TYPES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-url", default=os.environ.get("DATABASE_URL", ""), help="a bench/generate.py scheme")
    parser.add_argument("--target", default=f"openimis_bench_{os.getpid()}", help="database to create (dropped first)")
    parser.add_argument("--date", help="scheme day (default: the generated day)")
    parser.add_argument("--repeat", type=int, default=2, help="detection runs per variant (the best is reported)")
    parser.add_argument("--skip-load", action="store_true", help="reuse --target as loaded by an earlier run")
    parser.add_argument("--drop", action="store_true", help="drop the database and the role afterwards")
    parser.add_argument("--output", help="results file (default bench/results/attached.json)")
    args = parser.parse_args(argv)
    if not args.source_url:
        parser.error("--source-url: the bench/generate.py scheme's URL (or set DATABASE_URL)")
    os.environ["DATABASE_URL"] = args.source_url
    from bench._common import setup_django

    setup_django()  # (already done when called from the tests, on the same database)
    from bench.generate import generated_metadata

    metadata = generated_metadata() or {}
    day = dt.date.fromisoformat(args.date or metadata.get("date") or "")
    admin_url = url_for(args.source_url, "postgres")
    owner_url = url_for(args.source_url, args.target)
    role = role_for(args.target)
    role_url = url_for(args.source_url, args.target, role, PASSWORD)
    result: dict[str, Any] = {"date": day.isoformat(), "machine": machine(), "scheme": metadata}
    if not args.skip_load:
        result["load"] = load(args.source_url, owner_url, admin_url, args.target, sys.stdout)
        grant(owner_url, role)
        manage(role_url, "migrate", "--noinput")
        result["full_phone_refresh"] = child(role_url, PHONES)  # what the nightly refresh does, as the role
    result["check"] = manage(role_url, "check", "--database", "default").strip().splitlines()[-1]
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for name in ("policy_current_from_idx", "policy_history_idx", "policy_effective_idx", "policy_expiry_idx"):
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier("public", f"notifier_{name}")))
        conn.execute('ANALYZE public."tblPolicy"')
    runs = [detect(role_url, day) for _ in range(args.repeat)]
    result["without_indexes"] = min(runs, key=lambda run: run["seconds"])
    result["without_indexes"]["all_seconds"] = [run["seconds"] for run in runs]
    started = time.perf_counter()
    result["apply"] = manage(owner_url, "openimis_indexes", "--apply").strip().splitlines()
    result["apply_seconds"] = time.perf_counter() - started
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute('ANALYZE public."tblPolicy"')
    runs = [detect(role_url, day) for _ in range(args.repeat)]
    result["with_indexes"] = min(runs, key=lambda run: run["seconds"])
    result["with_indexes"]["all_seconds"] = [run["seconds"] for run in runs]
    same = result["with_indexes"]["types"] == result["without_indexes"]["types"]
    result["same_decisions"] = same
    path = write_results("attached", result, args.output)
    print(json.dumps({key: value for key, value in result.items() if key != "machine"}, indent=2, default=str))
    print(f"written to {path}")
    if args.drop:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.target)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
