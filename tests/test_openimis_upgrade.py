"""A standalone database migrated before the openIMIS mirror had its own app (notifier 0001-0009) upgrades in place:
the models move to the app `openimis` in migration state only, UUID columns become varchar(36) with their values."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.openimis_db import REPO, _with_database, server_url

pytestmark = pytest.mark.slow


def test_a_round_one_database_keeps_its_rows_through_the_move() -> None:
    name = f"upgrade_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _with_database(server_url(), "postgres")
    url = _with_database(server_url(), name)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENIMIS_", "NOTIFIER_"))}
    env.update({"DATABASE_URL": url, "CELERY_BROKER_URL": "", "REDIS_URL": "", "OPENIMIS_MODE": "standalone"})

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        manage("migrate", "notifier", "0009_outbox_send_started_at", "--verbosity", "0")
        with psycopg.connect(url, autocommit=True) as connection:
            assert connection.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_name = 'tblFamilies' "
                "AND column_name = 'FamilyUUID'"
            ).fetchall() == [("uuid",)]
            connection.execute(
                'INSERT INTO "tblFamilies" ("FamilyID", "FamilyUUID", "ValidityFrom") '
                "VALUES (7, '0A1E1202-E04E-44BD-9C39-7E368E3C9914', now())"
            )
            connection.execute(
                'INSERT INTO "tblFamilySMS" ("FamilyID", "ApprovalOfSMS", "LanguageOfSMS", "ValidityFrom") '
                "VALUES (7, true, 'sw', now())"
            )

        output = manage("migrate")

        assert "Applying openimis.0001_initial... OK" in output
        assert "Applying notifier.0010_openimis_app... OK" in output
        with psycopg.connect(url, autocommit=True) as connection:
            assert connection.execute(
                "SELECT data_type, character_maximum_length FROM information_schema.columns "
                "WHERE table_name = 'tblFamilies' AND column_name = 'FamilyUUID'"
            ).fetchall() == [("character varying", 36)]
            assert connection.execute('SELECT "FamilyID", "FamilyUUID" FROM "tblFamilies"').fetchall() == [
                (7, "0a1e1202-e04e-44bd-9c39-7e368e3c9914")
            ]
            assert connection.execute('SELECT "FamilyID", "LanguageOfSMS" FROM "tblFamilySMS"').fetchall() == [
                (7, "sw")
            ]
            assert connection.execute(
                "SELECT app_label FROM django_content_type WHERE model = 'family' ORDER BY 1"
            ).fetchall() == [("notifier",), ("openimis",)]
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
