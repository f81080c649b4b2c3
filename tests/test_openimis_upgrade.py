"""A standalone database migrated before the openIMIS mirror had its own app (notifier 0001-0009) upgrades in place:
the models move to the app `openimis` in migration state only, UUID columns become varchar(36) with their values
(PostgreSQL's uuid and SQLite's 32 hex digits alike)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.openimis_db import REPO, _with_database, server_url
from tests.processes import run_python

pytestmark = pytest.mark.slow

STORED_UUID = {"postgresql": "0A1E1202-E04E-44BD-9C39-7E368E3C9914", "sqlite": "0a1e1202e04e44bd9c397e368e3c9914"}


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(DATABASE_URL, connect()) of a fresh database of `backend`, dropped afterwards."""
    if backend == "sqlite":
        path = tmp_path / "round1.sqlite3"
        yield f"sqlite:///{path}", lambda: contextlib.closing(sqlite3.connect(path, isolation_level=None))
        return
    name = f"upgrade_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _with_database(server_url(), "postgres")
    url = _with_database(server_url(), name)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url, lambda: psycopg.connect(url, autocommit=True)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(connect: Any, sql: str) -> list[tuple[Any, ...]]:
    with connect() as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_round_one_database_keeps_its_rows_through_the_move(backend: str, tmp_path: Path) -> None:
    with database(backend, tmp_path) as (url, connect):
        env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENIMIS_", "NOTIFIER_"))}
        env.update({"DATABASE_URL": url, "CELERY_BROKER_URL": "", "REDIS_URL": "", "NOTIFIER_VAR_DIR": str(tmp_path)})

        def manage(*args: str) -> str:
            done = run_python(str(REPO / "manage.py"), *args, env=env, cwd=REPO)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        manage("migrate", "notifier", "0009_outbox_send_started_at", "--verbosity", "0")
        with connect() as connection:
            connection.execute(
                'INSERT INTO "tblFamilies" ("FamilyID", "FamilyUUID", "ValidityFrom") '  # noqa: S608 - constants
                f"VALUES (7, '{STORED_UUID[backend]}', '2025-01-01 00:00:00')"
            )
            connection.execute(
                'INSERT INTO "tblFamilySMS" ("FamilyID", "ApprovalOfSMS", "LanguageOfSMS", "ValidityFrom") '
                "VALUES (7, true, 'sw', '2025-01-01 00:00:00')"
            )

        output = manage("migrate")

        assert "Applying openimis.0001_initial... OK" in output
        assert "Applying notifier.0010_openimis_app... OK" in output
        assert rows(connect, 'SELECT "FamilyID", "FamilyUUID" FROM "tblFamilies"') == [
            (7, "0a1e1202-e04e-44bd-9c39-7e368e3c9914")
        ]
        assert rows(connect, 'SELECT "FamilyID", "LanguageOfSMS" FROM "tblFamilySMS"') == [(7, "sw")]
        assert rows(connect, "SELECT app_label FROM django_content_type WHERE model = 'family' ORDER BY 1") == [
            ("notifier",),
            ("openimis",),
        ]
        if backend == "postgresql":
            assert rows(
                connect,
                "SELECT data_type, character_maximum_length FROM information_schema.columns "
                "WHERE table_name = 'tblFamilies' AND column_name = 'FamilyUUID'",
            ) == [("character varying", 36)]
