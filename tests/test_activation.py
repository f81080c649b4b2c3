"""Activation and renewal are a change of status (SPEC §4, issue 11 point 5), standalone mode.

A current active row counts only when the version before it (the newest history row of the policy, LegacyID = its
id) was not active, or when there is no earlier version. Attached mode: tests/test_attached_e2e.py runs the same
cases (tests/openimis_scenario.py: idle -> active, edited while active, renewal created paid, renewal idle ->
active, renewal edited after its activation, a NULL status before) on a real openIMIS database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from notifier.detection import run_detection
from notifier.models import Decision, Family, Outbox, Policy
from tests.factories import ALL_TYPES_ON, DAY, at, due_fields

TODAY = dt.date(2026, 3, 20)
APPROVED = {"approvalOfNotification": True, "languageOfNotification": "sw"}
BECOMING_ACTIVE = ["activation_of_policy", "renewal_of_policy"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(time_machine: Any, settings: Any) -> Any:
    settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": ALL_TYPES_ON}
    time_machine.move_to(at(TODAY, 12), tick=False)
    return time_machine


@pytest.fixture
def policy_of(make_family: Callable[..., Family], make_policy: Callable[..., Policy]) -> Callable[..., Policy]:
    """policy_of(type, created=day, status=...): a current policy of the type's stage, first valid from `created`."""

    def make(notification_type: str, created: dt.date, status: int) -> Policy:
        fields = due_fields(notification_type, created, status=status)
        return make_policy(make_family(consent=APPROVED), **fields)

    return make


def new_version(policy: Policy, moment: dt.datetime, **changes: Any) -> None:
    """What openIMIS does on an edit: the stored values become a history row, the current row is valid from now."""
    policy.save_history(moment)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.save()


def run_on(clock: Any, day: dt.date, notification_type: str) -> int:
    clock.move_to(at(day, 12), tick=False)
    return run_detection(notification_type).queued


@pytest.mark.parametrize("notification_type", BECOMING_ACTIVE)
def test_a_policy_edited_while_active_is_not_activated_again(
    clock: Any, policy_of: Callable[..., Policy], notification_type: str
) -> None:
    policy = policy_of(notification_type, TODAY - 30 * DAY, Policy.Status.ACTIVE)  # active long before the window
    new_version(policy, at(TODAY, 9), value=99)  # an officer corrects the value today; still active

    assert run_on(clock, TODAY, notification_type) == 0
    assert not Outbox.objects.exists()
    assert not Decision.objects.exists()
    assert Policy.objects.filter(legacy_id=policy.pk, status=Policy.Status.ACTIVE).count() == 1


@pytest.mark.parametrize("notification_type", BECOMING_ACTIVE)
def test_an_idle_policy_that_becomes_active_is_activated_on_that_day(
    clock: Any, policy_of: Callable[..., Policy], notification_type: str
) -> None:
    policy = policy_of(notification_type, TODAY - 30 * DAY, Policy.Status.IDLE)
    assert run_on(clock, TODAY - 2 * DAY, notification_type) == 0  # still idle
    clock.move_to(at(TODAY - DAY, 8), tick=False)
    new_version(policy, at(TODAY - DAY, 8), status=Policy.Status.ACTIVE)  # the premium is paid

    assert run_on(clock, TODAY, notification_type) == 1

    outbox = Outbox.objects.get()
    assert (outbox.policy_id, outbox.notification_type, outbox.event_date) == (
        policy.pk,
        notification_type,
        TODAY - DAY,
    )


@pytest.mark.parametrize("notification_type", BECOMING_ACTIVE)
def test_an_edit_after_the_activation_is_not_a_second_activation(
    clock: Any, policy_of: Callable[..., Policy], notification_type: str
) -> None:
    """idle -> active (day 1, not run) -> edited while active (day 2): the newest history row is the active one."""
    policy = policy_of(notification_type, TODAY - 30 * DAY, Policy.Status.IDLE)
    new_version(policy, at(TODAY - 2 * DAY, 8), status=Policy.Status.ACTIVE)
    new_version(policy, at(TODAY - DAY, 8), value=42)
    assert list(
        Policy.objects.filter(legacy_id=policy.pk).order_by("validity_to").values_list("status", flat=True)
    ) == [Policy.Status.IDLE, Policy.Status.ACTIVE]

    assert run_on(clock, TODAY, notification_type) == 0


@pytest.mark.parametrize("notification_type", BECOMING_ACTIVE)
def test_a_policy_created_active_is_activated(
    clock: Any, policy_of: Callable[..., Policy], notification_type: str
) -> None:
    """No earlier version: the first row already active counts (paid at enrolment)."""
    policy = policy_of(notification_type, TODAY - DAY, Policy.Status.ACTIVE)

    assert run_on(clock, TODAY, notification_type) == 1
    assert Outbox.objects.get().policy_id == policy.pk


@pytest.mark.parametrize("notification_type", BECOMING_ACTIVE)
def test_the_edit_counts_once_activated_and_never_twice(
    clock: Any, policy_of: Callable[..., Policy], notification_type: str
) -> None:
    """Activated and queued on day 1; an edit on day 2 yields nothing more on the following days."""
    policy = policy_of(notification_type, TODAY - 30 * DAY, Policy.Status.IDLE)
    clock.move_to(at(TODAY - 3 * DAY, 8), tick=False)
    new_version(policy, at(TODAY - 3 * DAY, 8), status=Policy.Status.ACTIVE)
    assert run_on(clock, TODAY - 3 * DAY, notification_type) == 1
    new_version(policy, at(TODAY - 2 * DAY, 8), value=7)

    assert [run_on(clock, TODAY - DAY, notification_type), run_on(clock, TODAY, notification_type)] == [0, 0]
    assert Outbox.objects.count() == 1
