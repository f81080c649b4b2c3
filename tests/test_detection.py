"""Detection per type (SPEC §4): due day, window and catch-up, obsolete, renewals, statuses, history, trace."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from notifier import services
from notifier.detection import run_all_detection, run_detection
from notifier.detection_store import CandidateDecision
from notifier.models import Decision, DetectionRun, FamilyNotification, Outbox, Policy
from notifier.types import NOTIFICATION_TYPES
from tests.factories import APPROVED, DAY, DEFAULT_MAX_DELAY, EXPIRY_TYPES, TODAY, at, decision_of, due_fields, run_on

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_queues_a_candidate_on_its_due_day(clock: Any, enable: Any, due: Any, notification_type: str) -> None:
    policy = due(notification_type, TODAY)

    result = run_detection(notification_type)

    outbox = Outbox.objects.get(policy=policy, notification_type=notification_type)
    assert result.queued_outbox_ids == [outbox.pk]
    assert result.queued == 1
    assert (result.window_start, result.window_end) == (TODAY - DEFAULT_MAX_DELAY[notification_type] * DAY, TODAY)
    assert outbox.event_date == TODAY
    assert outbox.status == Outbox.Status.PENDING
    assert outbox.recipient == "+255712345678"
    assert outbox.language == "sw"
    assert outbox.family_id == policy.family_id
    decision = decision_of(policy, notification_type)
    assert (decision.outcome, decision.reason, decision.event_date) == ("queued", "", TODAY)
    run = DetectionRun.objects.get(notification_type=notification_type)
    assert run.completed_at is not None and run.queued == 1 and run.run_date == TODAY


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_queues_nothing_the_day_before(clock: Any, enable: Any, due: Any, notification_type: str) -> None:
    policy = due(notification_type, TODAY + DAY)

    result = run_detection(notification_type)

    assert result.queued == 0 and result.skipped == {}
    assert not Outbox.objects.filter(policy=policy).exists()
    assert not Decision.objects.filter(policy=policy).exists()


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_catches_up_a_day_on_which_nothing_ran(clock: Any, enable: Any, due: Any, notification_type: str) -> None:
    policy = due(notification_type, TODAY)
    assert run_on(clock, TODAY - DAY, notification_type).queued == 0
    # no run on TODAY

    result = run_on(clock, TODAY + DAY, notification_type)

    assert result.queued == 1
    assert Outbox.objects.get(policy=policy, notification_type=notification_type).event_date == TODAY


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_queues_on_the_last_day_of_the_window_and_not_after(
    clock: Any, enable: Any, due: Any, notification_type: str
) -> None:
    last_day = due(notification_type, TODAY - DEFAULT_MAX_DELAY[notification_type] * DAY)
    too_old = due(notification_type, TODAY - (DEFAULT_MAX_DELAY[notification_type] + 1) * DAY)

    result = run_detection(notification_type)

    assert list(Outbox.objects.values_list("policy_id", flat=True)) == [last_day.pk]
    assert result.obsolete == 0  # the first run of a type records no obsolete: no scan of history
    assert not Decision.objects.filter(policy=too_old).exists()


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_records_a_candidate_that_left_the_window_unqueued_as_obsolete(
    clock: Any, enable: Any, make_family: Any, due: Any, notification_type: str
) -> None:
    family = make_family(consent={"approvalOfNotification": False})
    policy = due(notification_type, TODAY, family=family)
    assert run_on(clock, TODAY, notification_type).skipped == {"no_consent": 1}
    services.update_family_notification_policy(family.uuid, {"approvalOfNotification": True})

    result = run_on(clock, TODAY + (DEFAULT_MAX_DELAY[notification_type] + 1) * DAY, notification_type)

    assert result.queued == 0
    assert result.obsolete == 1
    decision = decision_of(policy, notification_type)
    assert (decision.outcome, decision.reason, decision.event_date) == ("obsolete", "too_late", TODAY)
    assert not Outbox.objects.exists()
    assert run_on(clock, TODAY + (DEFAULT_MAX_DELAY[notification_type] + 2) * DAY, notification_type).obsolete == 0


@pytest.mark.parametrize("notification_type", ["activation_of_policy", "expiration_of_policy"])
def test_it_gives_an_obsolete_candidate_the_language_of_its_current_consent_only(
    clock: Any, enable: Any, make_family: Any, due: Any, notification_type: str
) -> None:
    family = make_family(consent={"approvalOfNotification": False, "languageOfNotification": "fr"})
    due(notification_type, TODAY, family=family)
    assert run_on(clock, TODAY, notification_type).skipped == {"no_consent": 1}
    # The consent row is closed (attached, openIMIS keeps such history rows): the family has no current consent.
    FamilyNotification.objects.filter(family=family).update(validity_to=at(TODAY, 13))
    seen: list[CandidateDecision] = []

    result = run_on(
        clock, TODAY + (DEFAULT_MAX_DELAY[notification_type] + 1) * DAY, notification_type, observer=seen.append
    )

    assert result.obsolete == 1
    assert [(d.outcome, d.language) for d in seen] == [("obsolete", "")]


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_does_not_mark_a_queued_candidate_obsolete(
    clock: Any, enable: Any, due: Any, notification_type: str
) -> None:
    policy = due(notification_type, TODAY)
    run_on(clock, TODAY, notification_type)

    result = run_on(clock, TODAY + 10 * DAY, notification_type)

    assert result.obsolete == 0
    assert decision_of(policy, notification_type).outcome == "queued"


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
@pytest.mark.parametrize("status", [Policy.Status.IDLE, Policy.Status.SUSPENDED, Policy.Status.READY])
def test_it_ignores_policies_in_a_status_that_must_not_notify(
    clock: Any, enable: Any, due: Any, notification_type: str, status: int
) -> None:
    due(notification_type, TODAY, status=status)

    result = run_detection(notification_type)

    assert (result.queued, result.skipped) == (0, {})
    assert not Outbox.objects.exists()


@pytest.mark.parametrize("notification_type", ["activation_of_policy", "starting_of_policy", "renewal_of_policy"])
def test_it_does_not_send_activation_starting_or_renewal_for_an_expired_policy(
    clock: Any, enable: Any, due: Any, notification_type: str
) -> None:
    due(notification_type, TODAY, status=Policy.Status.EXPIRED)

    assert run_detection(notification_type).queued == 0


@pytest.mark.parametrize(("notification_type", "stage"), [("activation_of_policy", "R"), ("renewal_of_policy", "N")])
def test_it_tells_new_policies_from_renewals_by_stage(
    clock: Any, enable: Any, due: Any, notification_type: str, stage: str
) -> None:
    due(notification_type, TODAY, stage=stage)

    assert run_detection(notification_type).queued == 0


@pytest.mark.parametrize("notification_type", EXPIRY_TYPES)
def test_it_notifies_an_expired_policy_of_expiry_types(
    clock: Any, enable: Any, due: Any, notification_type: str
) -> None:
    due(notification_type, TODAY, status=Policy.Status.EXPIRED)

    assert run_detection(notification_type).queued == 1


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_ignores_history_rows(clock: Any, enable: Any, due: Any, notification_type: str) -> None:
    """The only due version is a history row (ValidityTo set); the current row was suspended since."""
    policy = due(notification_type, TODAY)
    policy.save_history(at(TODAY, 11))
    policy.status = Policy.Status.SUSPENDED
    policy.save()
    assert Policy.objects.filter(legacy_id=policy.pk).exclude(status=Policy.Status.SUSPENDED).count() == 1

    result = run_detection(notification_type)

    assert (result.queued, result.skipped) == (0, {})
    assert not Outbox.objects.exists()


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_queues_once_for_two_runs_on_one_day(clock: Any, enable: Any, due: Any, notification_type: str) -> None:
    policy = due(notification_type, TODAY)

    first = run_detection(notification_type)
    clock.move_to(at(TODAY, 16), tick=False)
    second = run_detection(notification_type)

    assert first.queued == 1
    assert (second.queued, second.queued_outbox_ids, second.skipped) == (0, [], {})
    assert Outbox.objects.filter(policy=policy, notification_type=notification_type).count() == 1
    assert DetectionRun.objects.filter(notification_type=notification_type, completed_at__isnull=False).count() == 2


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_sends_to_a_family_that_opts_in_between_two_runs(
    clock: Any, enable: Any, make_family: Any, due: Any, notification_type: str
) -> None:
    family = make_family(consent=None)  # no contribution: default consent row, not approved
    policy = due(notification_type, TODAY, family=family)
    assert run_on(clock, TODAY, notification_type).skipped == {"no_consent": 1}
    skipped = decision_of(policy, notification_type)
    assert (skipped.outcome, skipped.reason) == ("skipped", "no_consent")
    services.update_family_notification_policy(family.uuid, {"approvalOfNotification": True})

    result = run_on(clock, TODAY + DAY, notification_type)

    assert result.queued == 1
    queued = decision_of(policy, notification_type)
    assert (queued.outcome, queued.reason) == ("queued", "")
    assert queued.first_evaluated_at == skipped.first_evaluated_at
    assert queued.last_evaluated_at == at(TODAY + DAY, 12)


@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_traces_a_disabled_type_and_sends_it_once_enabled(
    clock: Any, enable: Any, due: Any, notification_type: str
) -> None:
    policy = due(notification_type, TODAY)
    enable(**{notification_type: False})
    assert run_on(clock, TODAY, notification_type).skipped == {"type_disabled": 1}
    assert decision_of(policy, notification_type).reason == "type_disabled"
    assert not Outbox.objects.exists()
    enable()

    assert run_on(clock, TODAY + DAY, notification_type).queued == 1


def test_it_records_no_valid_phone(clock: Any, enable: Any, make_family: Any, due: Any) -> None:
    family = make_family(head_phone="call officer", members=[None, ""], consent=APPROVED)
    policy = due("expiration_of_policy", TODAY, family=family)

    assert run_detection("expiration_of_policy").skipped == {"no_valid_phone": 1}
    assert decision_of(policy, "expiration_of_policy").reason == "no_valid_phone"


def test_it_texts_the_first_member_with_a_valid_phone_when_the_head_has_none(
    clock: Any, enable: Any, make_family: Any, due: Any
) -> None:
    family = make_family(head_phone=None, members=["0754000111"], consent=APPROVED)
    due("expiration_of_policy", TODAY, family=family)

    run_detection("expiration_of_policy")

    assert Outbox.objects.get().recipient == "+255754000111"


def test_it_does_not_notify_a_deleted_family(clock: Any, enable: Any, make_family: Any, due: Any) -> None:
    family = make_family(consent=APPROVED)
    due("expiration_of_policy", TODAY, family=family)
    services.delete_family(family.uuid)

    assert run_detection("expiration_of_policy").queued == 0


def test_it_writes_nothing_on_a_dry_run(clock: Any, enable: Any, due: Any, make_family: Any) -> None:
    due("expiration_of_policy", TODAY)
    due("expiration_of_policy", TODAY, family=make_family(consent={"approvalOfNotification": False}))
    seen: list[Any] = []

    result = run_detection("expiration_of_policy", dry_run=True, observer=seen.append)

    assert (result.queued, result.skipped, result.queued_outbox_ids) == (1, {"no_consent": 1}, [])
    assert sorted(decision.outcome for decision in seen) == ["queued", "skipped"]
    assert not Outbox.objects.exists()
    assert not Decision.objects.exists()
    assert not DetectionRun.objects.exists()


def test_it_follows_reminder_days_and_max_delay_from_config(clock: Any, enable: Any, settings: Any, due: Any) -> None:
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "reminder_before_expiry_days": 10,
        "max_delay_days": {"need_for_renewal": 0},
    }
    on_time = due("expiration_of_policy", TODAY + 10 * DAY)  # expiry in 10 days: reminder due today
    late = due("expiration_of_policy", TODAY + 9 * DAY)  # was due yesterday; max delay 0

    result = run_detection("need_for_renewal")

    assert (result.window_start, result.window_end) == (TODAY, TODAY)
    assert list(Outbox.objects.values_list("policy_id", "event_date")) == [(on_time.pk, TODAY)]
    assert not Outbox.objects.filter(policy=late).exists()


def test_it_runs_for_an_explicit_date(clock: Any, enable: Any, due: Any) -> None:
    policy = due("expiration_of_policy", TODAY - 30 * DAY)

    result = run_detection("expiration_of_policy", TODAY - 30 * DAY)

    assert result.run_date == TODAY - 30 * DAY
    assert Outbox.objects.get().policy_id == policy.pk


def test_it_refuses_an_unknown_type(db: None) -> None:
    with pytest.raises(ValueError, match="notification_type: unknown type 'birthday'"):
        run_detection("birthday")
    with pytest.raises(ValueError, match="types: unknown notification type"):
        run_all_detection(types=["expiration_of_policy", "birthday"])


def test_it_dates_activation_in_the_scheme_time_zone_across_dst(
    settings: Any, time_machine: Any, enable: Any, make_family: Any, make_policy: Any
) -> None:
    """Europe/Paris springs forward on 2026-03-29 (a 23-hour day). Activation at 00:30 local that day is
    2026-03-28 22:30 UTC: its event date is the 29th, not the UTC date."""
    settings.TIME_ZONE = "Europe/Paris"
    spring = dt.date(2026, 3, 29)
    time_machine.move_to(at(spring, 23, 50), tick=False)
    family = make_family(consent=APPROVED)
    just_after_midnight = make_policy(
        family, **due_fields("activation_of_policy", spring, validity_from=at(spring, 0, 30))
    )
    late_evening = make_policy(family, **due_fields("activation_of_policy", spring, validity_from=at(spring, 23, 30)))
    assert just_after_midnight.validity_from.astimezone(dt.UTC).date() == dt.date(2026, 3, 28)
    settings.NOTIFIER = {**settings.NOTIFIER, "max_delay_days": {"activation_of_policy": 0}}

    assert run_detection("activation_of_policy", spring - DAY).queued == 0
    result = run_detection("activation_of_policy")

    assert result.run_date == spring == timezone.localdate()
    assert result.queued == 2
    assert set(Outbox.objects.values_list("policy_id", "event_date")) == {
        (just_after_midnight.pk, spring),
        (late_evening.pk, spring),
    }
