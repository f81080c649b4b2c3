"""docker-compose.yml (parsed: no Docker engine here), the bin/ role scripts, Flower's auth and `make serve`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from django.db.models import Count

from tests.processes import free_port, kill_group, subprocess_database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent
LONG_RUNNING = {"web", "worker", "beat", "flower"}


@pytest.fixture(scope="module")
def compose() -> Any:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_declares_every_service_with_a_health_check(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat", "flower"}
    for name in LONG_RUNNING | {"postgres", "redis"}:
        test = services[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, name
        assert len(test) > 1, name
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/api/policy_notification/health/" in " ".join(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in services["worker"]["healthcheck"]["test"][1]
    assert "/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])


def test_it_keeps_data_in_named_volumes(compose):
    services = compose["services"]
    assert set(compose["volumes"]) == {"postgres-data", "redis-data", "notifier-var"}
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    for name in LONG_RUNNING | {"migrate"}:
        assert "notifier-var:/var/lib/notifier" in services[name]["volumes"], name
        assert services[name]["environment"]["NOTIFIER_VAR_DIR"] == "/var/lib/notifier", name


def test_it_runs_the_bin_scripts_that_make_serve_runs(compose):
    services = compose["services"]
    serve = (ROOT / "bin" / "serve").read_text()
    started = re.search(r"for service in ([a-z ]+); do", serve)
    assert started is not None
    assert set(started.group(1).split()) == LONG_RUNNING
    for name in LONG_RUNNING:
        assert services[name]["command"] == [f"bin/{name}"], name
        script = ROOT / "bin" / name
        assert os.access(script, os.X_OK), script
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert "manage.py migrate --noinput" in serve
    assert 'gunicorn" project.wsgi:application' in (ROOT / "bin" / "web").read_text()
    assert "notifier.beat:LockedDatabaseScheduler" in (ROOT / "bin" / "beat").read_text()


def test_it_starts_the_roles_after_migrate_succeeded(compose):
    services = compose["services"]
    for name in LONG_RUNNING:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
    assert services["migrate"]["restart"] == "no"
    assert set(services["migrate"]["depends_on"]) == {"postgres", "redis"}


def test_it_wires_every_role_to_postgres_and_redis(compose):
    services = compose["services"]
    for name in LONG_RUNNING | {"migrate"}:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://notifier:"), name
        assert "@postgres:5432/notifier" in environment["DATABASE_URL"], name
        assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0", name
        assert environment["REDIS_URL"] == "redis://redis:6379/1", name
        assert environment["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?"), name


def test_it_requires_flower_credentials_from_the_environment(compose):
    flower = compose["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"  # noqa: S104 - inside the container
    assert flower["ports"] == ["${FLOWER_PUBLISH:-127.0.0.1:5555}:5555"]  # loopback unless told otherwise
    assert compose["services"]["web"]["ports"] == ["${WEB_PUBLISH:-127.0.0.1:8000}:8000"]
    assert compose["services"]["beat"]["healthcheck"]["test"] == ["CMD", "python", "manage.py", "beat_health"]


@pytest.mark.parametrize("credentials", [None, "", "admin", "admin:", ":secret", "admin:secret,other"])
def test_it_does_not_start_flower_without_proper_basic_auth(credentials, tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "FLOWER_BASIC_AUTH"}
    if credentials is not None:
        environment["FLOWER_BASIC_AUTH"] = credentials
    result = subprocess.run(
        [str(ROOT / "bin" / "flower")], env=environment, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("FLOWER_BASIC_AUTH: ")


def _get(url: str, credentials: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - loopback only
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_serves_web_worker_beat_and_flower_and_stops_all_on_ctrl_c(tmp_path, settings):
    """Also: its default configuration delivers the demo scheme through the fake gateway of its own web port."""
    from django.core.management import call_command

    from notifier.models import FakeGatewayMessage, Outbox

    call_command("load_demo", "--families", "40", stdout=open(os.devnull, "w"))  # noqa: SIM115
    web_port, flower_port = free_port(), free_port()
    credentials = "ops:s3cret-pass"
    environment = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "REDIS_URL": settings.REDIS_URL,
        "WEB_BIND": f"127.0.0.1:{web_port}",
        "WEB_WORKERS": "1",
        "WORKER_CONCURRENCY": "1",
        "WORKER_NAME": f"serve-test-{web_port}",
        "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": credentials,
        "NOTIFIER_VAR_DIR": str(tmp_path),
        "PYTHON_BIN": str(Path(sys.executable).parent),
        # No quiet hours: the suite runs at any hour, and the demo's messages must go out now.
        "NOTIFIER_CONFIG": json.dumps(
            {"eligibleNotificationTypes": {"expiration_of_policy": True}, "quiet_hours": None}
        ),
    }
    environment.pop("NOTIFIER_ENABLE_TEST_SMS", None)
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [str(ROOT / "bin" / "serve")],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = f"http://127.0.0.1:{web_port}/api/policy_notification/health/?checks=database,broker"
        wait_for(lambda: _reachable(health) == 200, timeout=90, what="the web health check", process=serve)
        body = json.loads(_get(health)[1])
        assert body["checks"]["broker"]["broker"] == "reachable"
        flower = f"http://127.0.0.1:{flower_port}"
        wait_for(lambda: _reachable(flower + "/healthcheck") == 200, timeout=60, what="Flower", process=serve)
        assert _get(flower + "/")[0] == 401
        assert _get(flower + "/", "ops:wrong")[0] == 401
        assert _get(flower + "/", credentials)[0] == 200

        def worker_listed() -> bool:
            status, payload = _get(flower + "/api/workers?refresh=1", credentials)
            return status == 200 and any(name.startswith(f"serve-test-{web_port}@") for name in json.loads(payload))

        wait_for(worker_listed, timeout=60, what="the worker in Flower", process=serve)
        client = Celery("serve-test-client", broker=settings.REDIS_URL, set_as_current=False)
        try:
            task_id = client.send_task("notifier.tasks.sweep_outbox").id
        finally:
            client.close()

        def task_listed() -> bool:
            status, payload = _get(flower + "/api/tasks", credentials)
            tasks: dict[str, dict[str, Any]] = json.loads(payload) if status == 200 else {}
            return bool(tasks.get(task_id, {}).get("state") == "SUCCESS")

        wait_for(task_listed, timeout=60, what="the task in Flower", process=serve)

        client = Celery("serve-test-client", broker=settings.REDIS_URL, set_as_current=False)
        try:
            client.send_task("notifier.tasks.send_notification_messages")
        finally:
            client.close()

        def all_delivered() -> bool:
            statuses = set(Outbox.objects.values_list("status", flat=True))
            return bool(statuses) and statuses <= {"sent", "failed", "unknown"}

        wait_for(all_delivered, timeout=90, what="the demo's messages delivered", process=serve)
        outcomes = dict(Outbox.objects.values_list("status").annotate(n=Count("id")))
        assert set(outcomes) == {"sent"}, outcomes
        assert FakeGatewayMessage.objects.count() == outcomes["sent"]
        assert _get(f"http://127.0.0.1:{web_port}/static/admin/css/base.css")[0] == 200
        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert serve.wait(timeout=60) != 0
        wait_for(lambda: not _group_alive(serve.pid), timeout=30, what="every service to stop")
    finally:
        kill_group(serve)
        log.close()
    output = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Serving: web" in output
    assert "beat: Starting" in output


def _reachable(url: str) -> int:
    try:
        return _get(url)[0]
    except OSError:
        return 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_it_reports_health_from_the_command_line(db, settings, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("health", "--checks", "database,broker")
    assert json.loads(capsys.readouterr().out)["database"]["ok"] is True
    from django.db.migrations.recorder import MigrationRecorder

    MigrationRecorder.Migration.objects.filter(app="notifier").update(applied=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(CommandError, match="unhealthy: beat: no dispatcher run has completed yet"):
        call_command("health", "--checks", "beat")
    with pytest.raises(CommandError, match="--checks: unknown or empty disk"):
        call_command("health", "--checks", "disk")


def test_it_keeps_secrets_out_of_the_image_context():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env", ".git"} <= set(ignored)
