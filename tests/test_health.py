from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from notifier.models import DispatcherRun

URL = "/api/policy_notification/health/"
DAR = ZoneInfo("Africa/Dar_es_Salaam")


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, second, tzinfo=DAR)


@pytest.fixture(autouse=True)
def _scheme_settings(settings):
    settings.TIME_ZONE = "Africa/Dar_es_Salaam"
    settings.SCHEDULED_TASK = []
    settings.NOTIFIER_HEARTBEAT_GRACE_SECONDS = 900


def installed(moment: dt.datetime) -> None:
    """As if `migrate` first ran at that moment (the health check's start of the beat's duty)."""
    from django.db.migrations.recorder import MigrationRecorder

    MigrationRecorder.Migration.objects.filter(app="notifier").update(applied=moment)


def completed_run(completed_at: dt.datetime) -> DispatcherRun:
    return DispatcherRun.objects.create(
        run_date=completed_at.date(), started_at=completed_at - dt.timedelta(seconds=2), completed_at=completed_at
    )


@pytest.mark.django_db
def test_it_is_healthy_when_the_last_scheduled_run_completed(client: Client):
    completed_run(at(28, 12, 0, 5))
    with time_machine.travel(at(28, 13), tick=False):
        response = client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["reasons"] == []
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["broker"]["redis"] == "reachable"
    assert body["checks"]["beat"]["age_seconds"] == 3595
    assert body["checks"]["beat"]["hours"] == [8, 12, 16, 20]


@pytest.mark.django_db
def test_it_reports_a_stopped_beat_once_a_scheduled_run_is_missed(client: Client):
    completed_run(at(28, 8, 0, 5))
    with time_machine.travel(at(28, 12, 20), tick=False):
        response = client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["reasons"] == ["beat: no dispatcher run completed since the run due at 2026-11-28 12:00 EAT"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_it_allows_the_grace_period_after_a_scheduled_hour(client: Client):
    completed_run(at(28, 8, 0, 5))
    with time_machine.travel(at(28, 12, 10), tick=False):
        assert client.get(URL).status_code == 200


@pytest.mark.django_db
def test_it_looks_back_over_the_night(client: Client):
    completed_run(at(27, 20, 0, 5))
    with time_machine.travel(at(28, 7, 59), tick=False):
        assert client.get(URL).status_code == 200
    with time_machine.travel(at(28, 8, 16), tick=False):
        assert client.get(URL).status_code == 503


@pytest.mark.django_db
def test_it_follows_the_scheduled_task_hours(client: Client, settings):
    settings.SCHEDULED_TASK = [{"task": "policy_notification.tasks.send_notification_messages", "hour": "8-16"}]
    completed_run(at(28, 8, 0, 5))
    with time_machine.travel(at(28, 9, 20), tick=False):
        response = client.get(URL)
    assert response.status_code == 503
    assert "due at 2026-11-28 09:00" in response.json()["reasons"][0]


@pytest.mark.django_db
def test_it_ignores_runs_that_did_not_complete(client: Client):
    installed(at(27, 9))
    DispatcherRun.objects.create(run_date=dt.date(2026, 11, 28), started_at=at(28, 12))
    with time_machine.travel(at(28, 13), tick=False):
        response = client.get(URL)
    assert response.status_code == 503
    assert response.json()["reasons"] == ["beat: no dispatcher run has completed yet"]


@pytest.mark.django_db
def test_it_reports_an_unreachable_redis(client: Client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    completed_run(at(28, 12, 0, 5))
    with time_machine.travel(at(28, 13), tick=False):
        response = client.get(URL)
    assert response.status_code == 503
    [reason] = response.json()["reasons"]
    assert reason.startswith("broker: redis unreachable (")


@pytest.mark.django_db
def test_it_checks_a_real_broker(client: Client, settings):
    settings.EMBEDDED_BROKER = False
    settings.CELERY_BROKER_URL = settings.REDIS_URL or "redis://127.0.0.1:6379/6"
    response = client.get(URL, {"checks": "broker"})
    assert response.status_code == 200
    assert response.json()["checks"]["broker"]["broker"] == "reachable"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get(URL, {"checks": "broker"})
    assert response.status_code == 503
    assert response.json()["reasons"][0].startswith("broker: broker unreachable (")


@pytest.mark.django_db
def test_it_limits_the_verdict_to_the_requested_checks(client: Client):
    response = client.get(URL, {"checks": "database,broker"})
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "broker"}
    installed(at(27, 9))
    with time_machine.travel(at(28, 13), tick=False):
        assert client.get(URL).status_code == 503  # no dispatcher run yet


@pytest.mark.django_db
def test_it_refuses_an_unknown_check(client: Client):
    response = client.get(URL, {"checks": "database,disk"})
    assert response.status_code == 400
    assert "checks: unknown check(s) disk" in response.json()["error"]


@pytest.mark.django_db
def test_a_fresh_install_is_healthy_with_a_note_until_its_first_run_is_due(client: Client):
    installed(at(28, 12, 30))
    with time_machine.travel(at(28, 16, 14), tick=False):
        response = client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["notes"] == [
        "beat: no dispatcher run yet; the first is due at 2026-11-28 16:00 EAT (installed 2026-11-28 12:30 EAT)"
    ]
    with time_machine.travel(at(28, 16, 16), tick=False):  # 16:00 plus the 15 minutes' grace has passed
        response = client.get(URL)
    assert response.status_code == 503
    assert response.json()["reasons"] == ["beat: no dispatcher run has completed yet"]
