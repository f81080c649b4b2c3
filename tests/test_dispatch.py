"""One dispatch path: the beat task, the embedded cycle and `send_notifications` (with and without a broker) share
the dispatcher lock, each records its run and catches up the family phones, and a failing detection turns health
red naming the type. Real PostgreSQL and Redis (the lock), a real local eGA gateway; the tasks run eagerly."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone

from notifier import tasks
from notifier.cycle import CycleSkipped, run_cycle
from notifier.demo import load_demo
from notifier.models import DispatcherRun, Family, FamilyPhone, Insuree, Outbox
from notifier.types import NOTIFICATION_TYPES
from tests.factories import ega_account
from tests.gateway import EGA_KEY, GatewayServer

pytestmark = pytest.mark.django_db(transaction=True)

ALL_TYPES = dict.fromkeys(NOTIFICATION_TYPES, True)
HEALTH = "/api/policy_notification/health/"


@pytest.fixture
def scheme(settings: Any) -> dt.date:
    assert settings.REDIS_URL, "the dispatcher lock is the real one in Redis here"
    settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": ALL_TYPES, "rate_limit_per_second": 1000.0}
    today = timezone.localdate()
    load_demo(today=today, families=30, seed=5)
    return today


def beat(day: dt.date) -> str:
    return "skipped" if tasks.send_notification_messages(day.isoformat()) == {"skipped": True} else "ran"


def cycle(day: dt.date) -> str:
    try:
        run_cycle(day)
    except CycleSkipped:
        return "skipped"
    return "ran"


def command(day: dt.date) -> str:
    try:
        call_command("send_notifications", "--date", day.isoformat(), stdout=io.StringIO())
    except CommandError as exc:
        assert "another dispatcher run is in progress" in str(exc)
        return "skipped"
    return "ran"


ENTRY_POINTS: dict[str, Callable[[dt.date], str]] = {
    "beat task": beat,
    "embedded cycle": cycle,
    "send_notifications": command,
}


@pytest.fixture(params=["embedded", "broker"])
def mode(request: pytest.FixtureRequest, settings: Any) -> str:
    """With a broker, the command hands off to the workers (eager here: the same process runs the task)."""
    settings.EMBEDDED_BROKER = request.param == "embedded"
    return str(request.param)


@pytest.mark.parametrize("first", list(ENTRY_POINTS))
def test_the_entry_points_share_one_lock_so_two_at_once_make_one_run(
    first: str, scheme: dt.date, mode: str, settings: Any
) -> None:
    gateway = GatewayServer(ega_key=EGA_KEY, hold_first=True)  # the first run stops in its delivery, holding the lock
    ega_account("e2e eGA", gateway.url)
    outcome: list[str] = []

    def run_first() -> None:
        try:
            outcome.append(ENTRY_POINTS[first](scheme))
        finally:
            connection.close()

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert gateway.holding.wait(timeout=60), "the first run never reached the gateway"
        assert {name: run(scheme) for name, run in ENTRY_POINTS.items()} == {
            "beat task": "skipped",
            "embedded cycle": "skipped",
            "send_notifications": "skipped",
        }
    finally:
        gateway.release.set()
        thread.join(timeout=120)
        gateway.stop()
    assert outcome == ["ran"]
    assert DispatcherRun.objects.count() == 1
    assert DispatcherRun.objects.get().completed_at is not None
    received = gateway.counts()
    assert set(received.values()) == {1}  # nothing twice
    assert sum(received.values()) == Outbox.objects.filter(status=Outbox.Status.SENT).count() > 0


def _silently_change_a_head_phone() -> Family:
    """openIMIS changes tblInsuree itself: no signal reaches the notifier, only the next run's catch-up."""
    texted = FamilyPhone.objects.filter(insuree_id=F("family__head_insuree_id")).order_by("family_id").first()
    assert texted is not None
    Insuree.objects.filter(pk=texted.insuree_id).update(phone="0765432100", validity_from=timezone.now())
    return Family.objects.get(pk=texted.family_id)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_records_its_run_and_catches_up_the_phones(
    entry: str, scheme: dt.date, mode: str, ega_gateway: GatewayServer
) -> None:
    previous_start = timezone.now() - dt.timedelta(hours=1)
    DispatcherRun.objects.create(run_date=scheme, started_at=previous_start, completed_at=previous_start)
    family = _silently_change_a_head_phone()
    assert FamilyPhone.objects.get(family=family).phone != "+255765432100"

    assert ENTRY_POINTS[entry](scheme) == "ran"

    assert FamilyPhone.objects.get(family=family).phone == "+255765432100"
    run = DispatcherRun.objects.exclude(started_at=previous_start).get()
    assert run.run_date == scheme
    assert run.completed_at is not None
    assert run.error == ""
    assert sorted(run.notification_types) == sorted(NOTIFICATION_TYPES)
    # What this run queued for that family went to its new number.
    assert set(Outbox.objects.filter(family=family).values_list("recipient", flat=True)) <= {"+255765432100"}
    assert set(Outbox.objects.values_list("status", flat=True)) == {Outbox.Status.SENT}


def test_a_dry_run_takes_no_lock_and_leaves_nothing_behind(scheme: dt.date, ega_gateway: GatewayServer) -> None:
    family = _silently_change_a_head_phone()
    out = io.StringIO()
    call_command("send_notifications", "--dry-run", "--date", scheme.isoformat(), stdout=out)
    assert "Dry run: would queue" in out.getvalue()
    assert "+255765432100"[:4] + "******" + "100" in out.getvalue()  # the caught-up phone, masked
    assert not DispatcherRun.objects.exists()
    assert not Outbox.objects.exists()
    assert FamilyPhone.objects.get(family=family).phone != "+255765432100"  # the catch-up was rolled back


@pytest.fixture
def failing_expiration_detection() -> Iterator[None]:
    """A real database failure for one type only: PostgreSQL refuses its detection run row."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL triggers")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION notifier_test_refuse_expiration() RETURNS trigger AS $$
            BEGIN
                IF NEW.notification_type = 'expiration_of_policy' THEN
                    RAISE EXCEPTION 'could not extend file: No space left on device';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER notifier_test_refuse_expiration BEFORE INSERT ON notifier_detection_run
                FOR EACH ROW EXECUTE FUNCTION notifier_test_refuse_expiration();
            """
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER IF EXISTS notifier_test_refuse_expiration ON notifier_detection_run;"
                "DROP FUNCTION IF EXISTS notifier_test_refuse_expiration();"
            )


def test_a_failing_detection_turns_health_red_naming_the_type_and_the_others_still_run(
    scheme: dt.date,
    ega_gateway: GatewayServer,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    failing_expiration_detection: None,
) -> None:
    settings.SCHEDULED_TASK = []
    settings.NOTIFIER_HEARTBEAT_GRACE_SECONDS = 900
    now = timezone.now()
    DispatcherRun.objects.create(
        run_date=scheme, started_at=now, completed_at=now, notification_types=list(NOTIFICATION_TYPES)
    )
    assert Client().get(HEALTH, {"checks": "beat"}).status_code == 200

    with caplog.at_level(logging.ERROR, logger="notifier"):
        outcome = tasks.send_notification_messages(scheme.isoformat())
    assert outcome["errors"] == 1
    assert set(Outbox.objects.values_list("notification_type", flat=True)) == set(NOTIFICATION_TYPES) - {
        "expiration_of_policy"
    }
    failure = [record for record in caplog.records if "detection of expiration_of_policy" in record.getMessage()]
    assert len(failure) == 1 and failure[0].exc_info is not None  # logged with its traceback

    response = Client().get(HEALTH, {"checks": "beat"})
    assert response.status_code == 503
    body = response.json()
    assert len(body["reasons"]) == 1
    reason = body["reasons"][0]
    assert reason.startswith(f"beat: detection failed in the dispatcher run of {scheme}: expiration_of_policy: ")
    assert "No space left on device" in reason
    assert body["checks"]["beat"]["error"].startswith("expiration_of_policy: ")


def test_health_turns_green_again_once_a_complete_run_follows(
    scheme: dt.date, ega_gateway: GatewayServer, settings: Any
) -> None:
    settings.SCHEDULED_TASK = []
    now = timezone.now()
    DispatcherRun.objects.create(run_date=scheme, started_at=now, completed_at=now, error="starting_of_policy: boom")
    assert Client().get(HEALTH, {"checks": "beat"}).status_code == 503
    tasks.send_notification_messages(scheme.isoformat())
    response = Client().get(HEALTH, {"checks": "beat"})
    assert response.status_code == 200, response.json()


def test_a_run_of_some_types_only_does_not_count_as_the_heartbeat(
    scheme: dt.date, ega_gateway: GatewayServer, settings: Any
) -> None:
    settings.SCHEDULED_TASK = []
    call_command(
        "send_notifications", "--date", scheme.isoformat(), "--type", "renewal_of_policy", stdout=io.StringIO()
    )
    run = DispatcherRun.objects.get()
    assert run.completed_at is not None and run.notification_types == ["renewal_of_policy"]
    response = Client().get(HEALTH, {"checks": "beat"})
    assert response.status_code == 503
    assert response.json()["reasons"] == ["beat: no dispatcher run has completed yet"]


def test_the_command_fails_naming_the_type_whose_detection_failed(
    scheme: dt.date, ega_gateway: GatewayServer, failing_expiration_detection: None
) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"detection failed for expiration_of_policy \(.*No space left on device"):
        call_command("send_notifications", "--date", scheme.isoformat(), stdout=out)
    assert re.search(
        r"^  expiration_of_policy +detection failed: ProgrammingError: could not extend", out.getvalue(), re.M
    )
    assert DispatcherRun.objects.get().error.startswith("expiration_of_policy: ")
