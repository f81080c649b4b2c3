"""Every unexpected 500 and every failed task is logged with its traceback, and notifier lines are printed once,
in a web process and in a Celery worker (which puts its own handler on the root logger). A real process with the
project's settings: a database that refuses connections makes a real 500; Celery's own tracer runs a failing task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import json, logging, os, sys
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django
    django.setup()
    from project.celery import app
    if sys.argv[1] == "worker":
        app.log.setup_logging_subsystem(loglevel="INFO")  # what `celery worker` does at start
    logging.getLogger("notifier.dispatch").info("notifier-line-once")
    from django.test import Client
    body = json.dumps({"data": json.dumps({"recipients": "255712345678", "message": "hi"})})
    response = Client(raise_request_exception=False).post(
        "/api/policy_notification/test_sms/", data=body, content_type="application/json"
    )
    print("status", response.status_code, flush=True)
    from celery.app.trace import build_tracer
    from notifier import tasks
    task = tasks.detect_notifications
    build_tracer(task.name, task, eager=False, propagate=False, app=app)(None, ["birthday", "2026-11-28"], {}, {})
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["web", "worker"])
def test_500s_and_task_failures_are_logged_with_tracebacks_and_notifier_lines_once(role: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nothing_listens_here",
        "NOTIFIER_ENABLE_TEST_SMS": "1",
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, role], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "status 500" in done.stdout
    log = done.stderr + done.stdout
    assert log.count("notifier-line-once") == 1, log
    assert log.count("Internal Server Error: /api/policy_notification/test_sms/") == 1, log
    assert "django.db.utils.OperationalError" in log
    assert log.count("Task notifier.tasks.detect_notifications[None] raised unexpected") == 1, log
    assert "ValueError: notification_type: unknown type 'birthday'" in log
    assert log.count("Traceback (most recent call last)") >= 2
