from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from notifier.openimis.mode import is_attached, openimis_schema
from notifier.openimis_indexes import RECOMMENDED_INDEXES

OWNER_HINT = (
    "creating an index needs the owner of the openIMIS tables: run `manage.py openimis_indexes --apply` with a "
    "DATABASE_URL of that role, or give the printed statements to your DBA (psql runs them as they are)"
)


class Command(BaseCommand):
    help = (
        "Print the CREATE INDEX CONCURRENTLY IF NOT EXISTS statements that make detection fast on the openIMIS "
        "tables (attached mode; OPENIMIS_DB_SCHEMA). --apply runs them, one by one, outside a transaction. "
        "Detection is correct without them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--apply", action="store_true", help="create the missing indexes (CONCURRENTLY)")
        parser.add_argument("--database", default="default", help="database alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        schema = openimis_schema()
        if not options["apply"]:
            if not is_attached():
                self.stdout.write(
                    "-- OPENIMIS_MODE=standalone: `migrate` creates these indexes on the service's tables."
                )
            self.stdout.write(f"-- Indexes for the policy notifier's detection on the openIMIS tables in {schema!r}.")
            self.stdout.write("-- Run each statement on its own (CONCURRENTLY cannot run inside a transaction).")
            for index in RECOMMENDED_INDEXES:
                self.stdout.write(f"-- {index.why}")
                self.stdout.write(index.statement(schema))
            return
        if not is_attached():
            raise CommandError("OPENIMIS_MODE: standalone; `migrate` creates these indexes, nothing to apply")
        self._apply(options["database"], schema)

    def _apply(self, alias: str, schema: str) -> None:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            raise CommandError(f"--database {alias}: attached mode needs PostgreSQL, not {connection.vendor}")
        if connection.in_atomic_block:
            raise CommandError("--apply: CREATE INDEX CONCURRENTLY cannot run inside a transaction")
        invalid = []
        for index in RECOMMENDED_INDEXES:
            state = self._state(alias, schema, index.name)
            if state == "valid":
                self.stdout.write(f"{index.name}: exists")
                continue
            if state == "invalid":
                invalid.append(index.name)
                self.stderr.write(
                    f"{index.name}: exists but is INVALID (an interrupted concurrent build); run DROP INDEX "
                    f'CONCURRENTLY "{schema}"."{index.name}"; then this command again'
                )
                continue
            started = time.monotonic()
            try:
                with connection.cursor() as cursor:
                    cursor.execute(index.statement(schema))
            except DatabaseError as exc:
                raise CommandError(
                    f"{index.name} on {schema}.{index.table}: {exc}".strip() + f"; {OWNER_HINT}"
                ) from None
            self.stdout.write(f"{index.name}: created in {time.monotonic() - started:.1f} s")
        if invalid:
            raise CommandError(f"invalid indexes left as they are: {', '.join(invalid)}")

    @staticmethod
    def _state(alias: str, schema: str, name: str) -> str | None:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                [schema, name],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return "valid" if row[0] else "invalid"
