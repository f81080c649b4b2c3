"""The send_notifications and forecast_notifications management commands."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from notifier.models import Decision, DetectionRun, Outbox, ProviderAccount
from notifier.settings import get_config
from tests.factories import APPROVED, DAY, FORECAST_HEADER, TODAY

pytestmark = pytest.mark.django_db


def call(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_prints_what_a_dry_run_would_queue_and_why_others_are_skipped(
    clock: Any, enable: Any, make_family: Any, due: Any
) -> None:
    queued = due("expiration_of_policy", TODAY)
    refused = due("expiration_of_policy", TODAY, family=make_family(consent={"approvalOfNotification": False}))

    output = call("send_notifications", "--dry-run", "--type", "expiration_of_policy")

    lines = output.splitlines()
    assert any(f"policy {queued.pk:>6}" in line and "queued" in line and "+255******678" in line for line in lines)
    assert any(f"policy {refused.pk:>6}" in line and "skipped (no_consent)" in line for line in lines)
    assert "queued    1  skipped    1 (no_consent=1)" in output
    assert "+255712345678" not in output  # phones are masked
    assert not Outbox.objects.exists() and not Decision.objects.exists() and not DetectionRun.objects.exists()


def test_it_queues_the_enabled_types_and_delivers_them_in_process(
    clock: Any, enable: Any, due: Any, tmp_path: Any
) -> None:
    # Without a broker the command delivers too; a file-writing account keeps this test off the network.
    ProviderAccount.objects.create(
        name="files", provider="TextNotificationProvider", config={"DestinationFolder": str(tmp_path)}
    )
    due("expiration_of_policy", TODAY)
    due("starting_of_policy", TODAY)
    enable(starting_of_policy=False)

    output = call("send_notifications")

    assert list(Outbox.objects.values_list("notification_type", flat=True)) == ["expiration_of_policy"]
    assert "starting_of_policy" not in output
    assert "Total queued: 1" in output
    assert Outbox.objects.get().status == Outbox.Status.SENT
    assert len(list(tmp_path.glob("*.txt"))) == 1
    total = next(line for line in output.splitlines() if line.startswith("total "))
    assert total.split()[1:3] == ["1", "1"]  # queued, sent


def test_it_runs_for_the_given_date(clock: Any, enable: Any, due: Any) -> None:
    policy = due("expiration_of_policy", TODAY - 20 * DAY)

    call("send_notifications", "--date", str(TODAY - 20 * DAY), "--type", "expiration_of_policy")

    assert Outbox.objects.get().policy_id == policy.pk
    assert DetectionRun.objects.get().run_date == TODAY - 20 * DAY


def test_it_names_the_option_of_a_bad_date(db: None) -> None:
    with pytest.raises(CommandError, match="--date: expected YYYY-MM-DD, got '28/11/2026'"):
        call("send_notifications", "--date", "28/11/2026")


def test_it_says_so_when_no_type_is_enabled(db: None) -> None:
    assert not any(get_config().eligibleNotificationTypes.values())

    assert "No notification type is enabled" in call("send_notifications")


def test_it_forecasts_each_day_once_by_type(clock: Any, enable: Any, make_family: Any, due: Any) -> None:
    due("expiration_of_policy", TODAY + 2 * DAY)  # its need_for_renewal (3 days ago) is still caught up today
    due("starting_of_policy", TODAY)
    family = make_family(consent=APPROVED)
    due("need_for_renewal", TODAY + 3 * DAY, family=family)

    output = call("forecast_notifications", "--days", "5")

    header, *rows = output.splitlines()
    assert header.split() == FORECAST_HEADER
    table = {row.split()[0]: [int(cell) for cell in row.split()[1:]] for row in rows}
    assert list(table) == [str(TODAY + offset * DAY) for offset in range(5)]
    assert table[str(TODAY)] == [0, 1, 1, 0, 0, 0, 2]
    assert table[str(TODAY + DAY)] == [0, 0, 0, 0, 0, 0, 0]  # today's messages are not counted again
    assert table[str(TODAY + 2 * DAY)] == [0, 0, 0, 1, 0, 0, 1]
    assert table[str(TODAY + 3 * DAY)] == [0, 0, 1, 0, 0, 0, 1]
    assert not Outbox.objects.exists() and not DetectionRun.objects.exists()


def test_it_refuses_a_forecast_of_no_days(db: None) -> None:
    with pytest.raises(CommandError, match="--days: must be between 1 and 366"):
        call("forecast_notifications", "--days", "0")
