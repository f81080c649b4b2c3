"""The README's run command on a bare machine: SQLite under a fresh var dir, no broker, no Redis, no PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notifier.types import NOTIFICATION_TYPES
from tests.factories import FORECAST_HEADER
from tests.processes import run_python

ROOT = Path(__file__).resolve().parent.parent


def demo_environment(var_dir: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "NOTIFIER_CONFIG"}
    }
    environment["NOTIFIER_VAR_DIR"] = str(var_dir)
    return environment


def run_command(environment: dict[str, str], *arguments: str) -> str:
    result = run_python("manage.py", *arguments, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_demo(var_dir: Path) -> str:
    return run_command(demo_environment(var_dir), "demo", "--families", "120")


def table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if fields and (fields[0] in NOTIFICATION_TYPES or fields[0] == "total"):
            rows[fields[0]] = fields[1:]
    return rows


@pytest.mark.slow
def test_it_sends_every_enabled_type_on_a_fresh_var_dir_without_postgres_or_redis(tmp_path):
    output = run_demo(tmp_path)
    assert f"Database: sqlite3 {tmp_path / 'notifier.sqlite3'}" in output
    assert "Broker:   memory:// (embedded, in-process)" in output
    rows = table_rows(output)
    assert set(rows) == {*NOTIFICATION_TYPES, "total"}
    for notification_type in NOTIFICATION_TYPES:
        queued, sent, retry, failed, unknown = (int(value) for value in rows[notification_type][:5])
        assert sent > 0, f"{notification_type}: nothing sent\n{output}"
        assert (queued, retry, failed, unknown) == (sent, 0, 0, 0), f"{notification_type}\n{output}"
    total_sent = int(rows["total"][1])
    assert f"({total_sent} message(s) this run)" in output
    assert "/admin/notifier/outbox/" in output
    copies = sorted((tmp_path / "sent_notification").glob("outbox-*.txt"))
    assert len(copies) == total_sent
    assert f"({total_sent} file(s), one per delivered message)" in output

    # The exact line it prints makes the README's next commands show the scheme, in a shell of their own.
    [line] = [line.strip() for line in output.splitlines() if line.strip().startswith("export NOTIFIER_CONFIG=")]
    config = line.removeprefix("export NOTIFIER_CONFIG='").removesuffix("'")
    environment = {**demo_environment(tmp_path), "NOTIFIER_CONFIG": config}
    dry_run = run_command(environment, "send_notifications", "--dry-run")
    assert "Dry run: would queue for " in dry_run
    assert "expiration_of_policy" in dry_run
    assert "No notification type is enabled" not in dry_run
    forecast = run_command(environment, "forecast_notifications", "--days", "2").splitlines()
    assert forecast[0].split() == FORECAST_HEADER
    assert len(forecast) == 4  # header, two days, and what the default quiet hours (20:00-08:00) do to the runs
    assert forecast[3].startswith("Quiet hours 20:00-08:00 (Africa/Dar_es_Salaam): nothing is sent then.")

    # Run again on the same var dir: the scheme is kept, nothing is sent twice.
    again = table_rows(run_demo(tmp_path))
    assert again["total"][:2] == ["0", "0"]
