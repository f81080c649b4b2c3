"""Issue 14.5: quiet hours (20:00-08:00 in TIME_ZONE by default) — nothing is sent inside them; a due or retried
message waits for its own minute after they end, spread over `spread_minutes`. The clock is pinned."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

from notifier.config import QuietHours, parse_config
from notifier.delivery.runner import deliver
from notifier.delivery.store import hand_out_due
from notifier.models import Outbox, ProviderAccount
from notifier.quiet import next_send_time, spread_offset
from tests.factories import bare_outbox, ega_account
from tests.gateway import GatewayServer

pytestmark = pytest.mark.quiet_hours

DAR = ZoneInfo("Africa/Dar_es_Salaam")  # UTC+3, no DST
PARIS = ZoneInfo("Europe/Paris")
NO_SPREAD = QuietHours(spread_minutes=0)
GRACE = dt.timedelta(seconds=600)  # NOTIFIER_SWEEP_GRACE_SECONDS
HOUR = dt.timedelta(hours=1)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(DAR, 2026, 11, 28, 21, 0), dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)),  # 08:00 next day
        (local(DAR, 2026, 11, 28, 20, 0), dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)),  # 20:00 is quiet
        (local(DAR, 2026, 11, 29, 0, 30), dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)),  # after midnight
        (local(DAR, 2026, 11, 29, 7, 59), dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)),
        (local(DAR, 2026, 11, 29, 8, 0), None),
        (local(DAR, 2026, 11, 29, 19, 59), None),
    ],
)
def test_next_send_time_in_dar_es_salaam(now: dt.datetime, expected: dt.datetime | None) -> None:
    assert next_send_time(now, NO_SPREAD, DAR) == expected


def test_quiet_hours_end_on_local_time_across_a_dst_change() -> None:
    """Paris, the night clocks go forward (29 March 2026): 08:00 local is then 06:00 UTC, not 07:00."""
    assert next_send_time(local(PARIS, 2026, 3, 28, 22, 0), NO_SPREAD, PARIS) == dt.datetime(
        2026, 3, 29, 6, 0, tzinfo=dt.UTC
    )


def test_a_daytime_window_and_no_quiet_hours_at_all() -> None:
    lunch = QuietHours(start="13:00", end="14:00", spread_minutes=0)
    assert next_send_time(local(DAR, 2026, 11, 28, 13, 30), lunch, DAR) == dt.datetime(
        2026, 11, 28, 11, 0, tzinfo=dt.UTC
    )
    assert next_send_time(local(DAR, 2026, 11, 28, 21, 0), lunch, DAR) is None
    assert next_send_time(local(DAR, 2026, 11, 28, 21, 0), None, DAR) is None


def test_held_messages_are_spread_evenly_over_the_window() -> None:
    """3,000 messages held overnight, 60-minute spread: about 50 a minute (under 1 a second), never a burst."""
    offsets = [spread_offset(outbox_id, QuietHours()) for outbox_id in range(1, 3001)]
    assert all(dt.timedelta(0) <= offset < dt.timedelta(minutes=60) for offset in offsets)
    per_minute = Counter(int(offset.total_seconds()) // 60 for offset in offsets)
    assert len(per_minute) == 60
    assert max(per_minute.values()) <= 75


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"quiet_hours": {"start": "25:00"}}, "'quiet_hours.start'"),
        ({"quiet_hours": {"start": "8:00"}}, "'quiet_hours.start'"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "quiet_hours: start and end are equal"),
        ({"quiet_hours": {"spread_minutes": -1}}, "'quiet_hours.spread_minutes'"),
        ({"quiet_hours": {"begin": "20:00"}}, "'quiet_hours.begin': unknown key"),
    ],
)
def test_bad_quiet_hours_are_refused_naming_the_key(raw: dict[str, Any], named: str) -> None:
    from notifier.config import ConfigError

    with pytest.raises(ConfigError, match=named):
        parse_config(raw)


def test_the_default_is_20_to_8() -> None:
    assert parse_config({}).quiet_hours == QuietHours(start="20:00", end="08:00", spread_minutes=60)


@pytest.fixture
def ega(db: None, gateway: GatewayServer) -> ProviderAccount:
    return ega_account("ega", gateway.url)


@pytest.mark.django_db
def test_a_retry_due_at_21_goes_out_at_8(settings: Any, gateway: GatewayServer, ega: ProviderAccount) -> None:
    settings.NOTIFIER = {**settings.NOTIFIER, "quiet_hours": {"start": "20:00", "end": "08:00", "spread_minutes": 0}}
    row = bare_outbox("Your policy expires today.")
    retry_at = local(DAR, 2026, 11, 28, 21, 0)
    Outbox.objects.filter(pk=row.pk).update(attempts=1, next_attempt_at=retry_at, claimed_at=retry_at - HOUR)
    with time_machine.travel(retry_at, tick=False):
        assert hand_out_due(10, GRACE) == [row.pk]
        assert deliver(row.pk) == "pending"
    assert gateway.received == []
    row.refresh_from_db()
    assert row.next_attempt_at == local(DAR, 2026, 11, 29, 8, 0)
    assert row.attempts == 1  # waiting is no attempt
    assert row.last_error == "quiet hours: waits until 2026-11-29 08:00"
    with time_machine.travel(local(DAR, 2026, 11, 29, 7, 59), tick=False):
        assert hand_out_due(10, GRACE) == []
        assert deliver(row.pk) == "skipped"
    with time_machine.travel(local(DAR, 2026, 11, 29, 8, 0), tick=False):
        assert hand_out_due(10, GRACE) == [row.pk]
        assert deliver(row.pk) == "sent"
    assert len(gateway.received) == 1


@pytest.mark.django_db
def test_messages_queued_by_the_20_00_run_leave_over_the_morning_hour(
    settings: Any, gateway: GatewayServer, ega: ProviderAccount
) -> None:
    rows = [bare_outbox("Hello") for _ in range(3)]
    evening = local(DAR, 2026, 11, 28, 20, 0)
    Outbox.objects.filter(pk__in=[r.pk for r in rows]).update(next_attempt_at=evening)
    with time_machine.travel(evening, tick=False):
        assert {deliver(r.pk) for r in rows} == {"pending"}
    times = sorted(Outbox.objects.values_list("next_attempt_at", flat=True))
    assert all(local(DAR, 2026, 11, 29, 8, 0) <= t < local(DAR, 2026, 11, 29, 9, 0) for t in times)
    assert len(set(times)) == 3  # each at its own moment
    assert gateway.received == []


@pytest.mark.django_db
def test_daytime_delivery_is_untouched(gateway: GatewayServer, ega: ProviderAccount) -> None:
    row = bare_outbox("Hello")
    with time_machine.travel(local(DAR, 2026, 11, 28, 10, 0), tick=False):
        Outbox.objects.filter(pk=row.pk).update(next_attempt_at=local(DAR, 2026, 11, 28, 10, 0))
        assert deliver(row.pk) == "sent"


@pytest.mark.django_db
def test_the_forecast_says_which_runs_wait(settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": {"expiration_of_policy": True}}
    call_command("forecast_notifications", "--days", "1")
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == (
        "Quiet hours 20:00-08:00 (Africa/Dar_es_Salaam): nothing is sent then. Messages of the dispatcher run(s) at "
        "20:00 go out at 08:00 + 60 min (the next morning for evening runs)."
    )
