"""A newcomer's command-line mistakes end in one line naming the setting and what to do, exit status 2; the
traceback only with --traceback or -v 2. A broker lost after detection says what stays pending."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from notifier.models import Outbox
from project.cli_errors import wants_traceback
from tests.processes import SERVICE_SECRET_KEY, free_port, run_python, subprocess_database_url

ROOT = Path(__file__).resolve().parent.parent


def manage(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in {"NOTIFIER_CONFIG", "CELERY_BROKER_URL"}}
    env.update(environment)
    return run_python("manage.py", *arguments, env=env, timeout=120)


def test_it_knows_when_a_traceback_is_asked_for():
    assert wants_traceback(["manage.py", "migrate", "--traceback"])
    assert wants_traceback(["manage.py", "migrate", "-v", "2"])
    assert wants_traceback(["manage.py", "migrate", "-v3"])
    assert wants_traceback(["manage.py", "migrate", "--verbosity=2"])
    assert not wants_traceback(["manage.py", "migrate", "-v", "1"])
    assert not wants_traceback(["manage.py", "send_notifications", "--date", "2026-11-28"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (
            {"NOTIFIER_CONFIG": "{'eligibleNotificationTypes': {}}"},
            "error: NOTIFIER_CONFIG: not valid JSON: Expecting property name enclosed in double quotes at line 1 "
            "column 2 (fix it, or unset NOTIFIER_CONFIG / NOTIFIER_CONFIG_FILE for the defaults)",
        ),
        (
            {"DATABASE_URL": "postgress://postgres@127.0.0.1/notifier"},
            "error: DATABASE_URL: unknown scheme 'postgress'; use postgres://user:password@host:5432/name "
            "(or sqlite:///path/file.sqlite3), or unset it for the embedded SQLite",
        ),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(environment, expected):
    result = manage("send_notifications", "--dry-run", **environment)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [expected]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_unreachable_database_is_one_line_unless_a_traceback_is_asked_for():
    url = f"postgres://postgres:secret-pw@127.0.0.1:{free_port()}/notifier"
    result = manage("migrate", DATABASE_URL=url)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"DATABASE_URL: database unreachable (127.0.0.1:{url.rsplit(':', 1)[1]}: connection ")
    assert line.endswith("or fix DATABASE_URL. --traceback for details.")
    assert "secret-pw" not in line
    verbose = manage("migrate", "--traceback", DATABASE_URL=url)
    assert verbose.returncode != 0
    assert "Traceback (most recent call last)" in verbose.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_broker_lost_after_detection_leaves_the_rows_pending_for_the_sweeper(make_family, make_policy, settings):
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "en"})
    make_policy(family, expiry_date=timezone.localdate(), effective_date=timezone.localdate() - dt.timedelta(days=300))
    result = manage(
        "send_notifications",
        "--type",
        "expiration_of_policy",
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
        DJANGO_SECRET_KEY=SERVICE_SECRET_KEY,
        NOTIFIER_CONFIG=json.dumps({"eligibleNotificationTypes": {"expiration_of_policy": True}}),
    )
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("CommandError")]
    assert "CELERY_BROKER_URL: broker unreachable after detection" in line
    assert line.endswith(
        "1 of 1 queued outbox row(s) stay pending, and the sweeper sends them once the broker and a worker are back. "
        "Nothing is lost or sent twice."
    )
    assert list(Outbox.objects.values_list("status", flat=True)) == ["pending"]
