"""A synthetic openIMIS-like scheme, written straight into PostgreSQL with COPY, as of a given day.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench \\
        .venv/bin/python bench/generate.py --families 300000 --date 2026-11-28 --seed 1 --reset

What it writes (seeded: the same flags give the same rows):
- a location tree (~100,000 families a region, ~10,000 a district, ~1,500 a ward, ~150 a village), one
  enrolment officer a ward,
  six products, two of which convert into another (OLDCHF -> CHFBASIC -> CHFPLUS);
- families of 1-7 insurees, the head first; a phone mix like the field's (local 07..., +255 with spaces,
  digits without +, blank, NULL, junk such as "n/a"), some members with phones, some heads with an older
  history row (another phone); 0.5 % deleted families (retired with their members and consent);
- consent rows (tblFamilySMS) for ~93 % of families, ~60 % of them approving, languages sw / en / fr / fr-CA;
- per family a chain of yearly policies (new, then renewals, now and then into the conversion product) whose
  last expiry is spread evenly over the two years around --date; statuses as openIMIS leaves them on that day
  (idle or ready when unpaid, active from the payment day, expired by the nightly batch or not yet, suspended),
  each status change leaving a history row (ValidityTo set, LegacyID = the current id) the way openIMIS does;
  early and late renewals, deleted renewals, and a few unrelated second products.
Nothing is dated after --date: the database is a snapshot of the scheme at the end of that day.

Afterwards notifier_family_phone is filled by notifier.phones.refresh_family_phones() (the sender's phone rule)
and the tables are analysed. The load runs in one transaction with foreign-key triggers off
(session_replication_role = replica, the usual bulk-load setting); referential integrity is checked with
set-based queries before commit instead, so a broken generator rolls everything back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scheme_data import (
    NOTIFIER_TABLES,
    TABLES,
    GenerateError,
    GenerateOptions,
    GenerateSummary,
)
from bench.scheme_rows import Scheme, Spool

# --- loading -----------------------------------------------------------------------------------------------


def _has_scheme(cursor: Any) -> bool:
    cursor.execute(
        'SELECT EXISTS (SELECT 1 FROM "tblLocations") OR EXISTS (SELECT 1 FROM "tblFamilies") '
        'OR EXISTS (SELECT 1 FROM "tblInsuree") OR EXISTS (SELECT 1 FROM "tblPolicy") '
        'OR EXISTS (SELECT 1 FROM "tblProduct") OR EXISTS (SELECT 1 FROM "tblOfficer")'
    )
    return bool(cursor.fetchone()[0])


def _reset(cursor: Any) -> None:
    tables = [name for name, _columns, _identity in TABLES] + list(NOTIFIER_TABLES)
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses tables with deferred checks pending
    cursor.execute(f"TRUNCATE {', '.join(_quote(name) for name in tables)} RESTART IDENTITY CASCADE")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy(cursor: Any, table: str, columns: tuple[str, ...], path: Path) -> None:
    statement = f"COPY {_quote(table)} ({', '.join(_quote(c) for c in columns)}) FROM STDIN"
    with cursor.copy(statement) as copy, path.open("r", encoding="utf-8") as handle:
        while block := handle.read(1 << 20):
            copy.write(block)


INTEGRITY_CHECKS = {
    "insuree without family": 'SELECT count(*) FROM "tblInsuree" i WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblFamilies" f WHERE f."FamilyID" = i."FamilyID")',
    "family head missing": 'SELECT count(*) FROM "tblFamilies" f WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblInsuree" i WHERE i."InsureeID" = f."InsureeID")',
    "family location missing": 'SELECT count(*) FROM "tblFamilies" f WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblLocations" l WHERE l."LocationId" = f."LocationId")',
    "policy family missing": 'SELECT count(*) FROM "tblPolicy" p WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblFamilies" f WHERE f."FamilyID" = p."FamilyID")',
    "policy product missing": 'SELECT count(*) FROM "tblPolicy" p WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblProduct" r WHERE r."ProdID" = p."ProdID")',
    "policy officer missing": 'SELECT count(*) FROM "tblPolicy" p WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblOfficer" o WHERE o."OfficerID" = p."OfficerID")',
    "policy history without current row": 'SELECT count(*) FROM "tblPolicy" p WHERE p."LegacyID" IS NOT NULL '
    'AND NOT EXISTS (SELECT 1 FROM "tblPolicy" c WHERE c."PolicyID" = p."LegacyID")',
    "consent without family": 'SELECT count(*) FROM "tblFamilySMS" s WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblFamilies" f WHERE f."FamilyID" = s."FamilyID")',
}


def _check_integrity(cursor: Any) -> None:
    broken = {}
    for label, query in INTEGRITY_CHECKS.items():
        cursor.execute(query)
        count = cursor.fetchone()[0]
        if count:
            broken[label] = count
    if broken:
        raise GenerateError(f"generated rows break referential integrity, nothing loaded: {broken}")


def generate(options: GenerateOptions, log: TextIO | None = None) -> GenerateSummary:
    """Load a synthetic scheme into the default database (Django settings). Returns counts and timings."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from notifier.phones import refresh_family_phones

    if connection.vendor != "postgresql":
        raise GenerateError(f"DATABASE_URL: bench/generate.py needs PostgreSQL (COPY), got {connection.vendor}")
    today = options.date or timezone.localdate()
    summary = GenerateSummary(date=today.isoformat(), seed=options.seed, families=options.families)

    def say(message: str) -> None:
        if log is not None:
            log.write(message + "\n")
            log.flush()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as directory:
        spools = {name: Spool(Path(directory), name) for name, _columns, _identity in TABLES}
        scheme = Scheme(options, today, settings.TIME_ZONE, spools)
        scheme.reference_data()
        scheme.families()
        for spool in spools.values():
            spool.handle.close()
        summary.rows = {name: spool.rows for name, spool in spools.items()}
        summary.current_policies = scheme.current_policies
        summary.deleted_policies = scheme.deleted_policies
        summary.history_policies = scheme.history_policies
        summary.seconds["rows"] = round(time.perf_counter() - started, 2)
        say(f"generated {sum(summary.rows.values()):,} rows in {summary.seconds['rows']} s: {summary.rows}")

        loading = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            if _has_scheme(cursor):
                if not options.reset:
                    raise GenerateError(
                        "the database already holds a scheme (tblLocations/tblFamilies/tblPolicy/... not empty); "
                        "pass --reset to empty it first"
                    )
                _reset(cursor)
            cursor.execute("SET LOCAL session_replication_role = replica")
            for name, columns, _identity in TABLES:
                _copy(cursor, name, columns, spools[name].path)
                say(f"  COPY {name}: {spools[name].rows:,} rows")
            cursor.execute("SET LOCAL session_replication_role = origin")
            _check_integrity(cursor)
            for name, _columns, identity in TABLES:
                if identity:
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                        f"(SELECT coalesce(max({_quote(identity)}), 0) + 1 FROM {_quote(name)}), false)",
                        [_quote(name), identity],
                    )
            metadata = {"bench": {"date": today.isoformat(), "seed": options.seed, "families": options.families}}
            cursor.execute(f"COMMENT ON TABLE \"tblPolicy\" IS '{json.dumps(metadata)}'")
        summary.seconds["copy"] = round(time.perf_counter() - loading, 2)
        say(f"loaded in {summary.seconds['copy']} s")

    phones = time.perf_counter()
    summary.family_phones = refresh_family_phones()
    summary.seconds["family_phones"] = round(time.perf_counter() - phones, 2)
    say(f"notifier_family_phone: {summary.family_phones:,} rows in {summary.seconds['family_phones']} s")

    analysing = time.perf_counter()
    tables = [name for name, _columns, _identity in TABLES] + ["notifier_family_phone"]
    with connection.cursor() as cursor:
        vacuum = options.vacuum and not connection.in_atomic_block
        for name in tables:
            cursor.execute(f"{'VACUUM ANALYZE' if vacuum else 'ANALYZE'} {_quote(name)}")
        cursor.execute('SELECT count(*) FROM "tblFamilySMS" WHERE "ApprovalOfSMS" AND "ValidityTo" IS NULL')
        summary.approving_families = cursor.fetchone()[0]
    summary.seconds["analyze"] = round(time.perf_counter() - analysing, 2)
    summary.seconds["total"] = round(time.perf_counter() - started, 2)
    say(f"{'vacuum analyze' if options.vacuum else 'analyze'} in {summary.seconds['analyze']} s")
    return summary


def generated_metadata() -> dict[str, Any] | None:
    """The flags of the last load into the default database (stored as a comment on tblPolicy), if any."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('\"tblPolicy\"'::regclass, 'pg_class')")
        row = cursor.fetchone()
    if not row or not row[0]:
        return None
    try:
        value = json.loads(row[0])
    except json.JSONDecodeError:
        return None
    bench = value.get("bench") if isinstance(value, dict) else None
    return bench if isinstance(bench, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=300_000, help="number of families (default 300,000)")
    parser.add_argument("--date", help="the scheme's 'today' (YYYY-MM-DD); default: today in TIME_ZONE")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reset", action="store_true", help="empty the scheme and the notifier's tables first")
    parser.add_argument("--no-vacuum", action="store_true", help="ANALYZE only, no VACUUM")
    parser.add_argument("--json", help="write the summary here (default bench/results/generate.json)")
    args = parser.parse_args(argv)

    try:
        date = dt.date.fromisoformat(args.date) if args.date else None
    except ValueError:
        parser.error(f"--date: expected YYYY-MM-DD, got {args.date!r}")

    from bench._common import setup_django, write_results

    setup_django()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    try:
        options = GenerateOptions(
            families=args.families, date=date, seed=args.seed, reset=args.reset, vacuum=not args.no_vacuum
        )
        summary = generate(options, log=sys.stdout)
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.describe())
    print(f"summary: {write_results('generate', asdict(summary), args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
