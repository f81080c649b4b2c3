"""Upstream defects of the openIMIS policy_notification module (SPEC §13) that detection must not repeat."""

from __future__ import annotations

from typing import Any

import pytest

from notifier.detection import run_all_detection, run_detection
from notifier.models import Decision, FamilyNotification, FamilyPhone, Outbox, Policy, Product
from tests.factories import APPROVED, DAY, TODAY, at, decision_of, due_fields, run_on

pytestmark = pytest.mark.django_db


def test_it_queues_one_message_per_policy_however_many_members_and_versions(
    clock: Any, enable: Any, make_family: Any, due: Any
) -> None:
    """§13.1: upstream joined policies to a detail table (members, versions) without DISTINCT and sent the same
    SMS once per joined row. Here a family of four members with phones and a policy with three history
    versions yields exactly one outbox row per (policy, type), even over several runs."""
    family = make_family(consent=APPROVED, members=["0754000111", "0754000222", "0754000333"])
    policy = due("expiration_of_policy", TODAY, family=family)
    for hour in (9, 10, 11):
        policy.save_history(at(TODAY - 40 * DAY, hour))
        policy.save()
    assert Policy.objects.filter(legacy_id=policy.pk).count() == 3

    first = run_all_detection()
    second = run_all_detection()

    assert [r.queued for r in first if r.notification_type == "expiration_of_policy"] == [1]
    assert sum(r.queued for r in second) == 0
    assert Outbox.objects.filter(policy=policy).count() == 1
    assert Outbox.objects.get(policy=policy).recipient == "+255712345678"  # the head's, once


def test_it_keeps_need_for_renewal_apart_from_expiration(clock: Any, enable: Any, due: Any) -> None:
    """§13.2: upstream recorded the need-for-renewal reminder under the expiration type, so the expiry-day
    message was then considered already sent and never went out. Both must be queued, each under its own type."""
    policy = due("expiration_of_policy", TODAY)

    reminder = run_on(clock, TODAY - 5 * DAY, "need_for_renewal")
    expiry = run_on(clock, TODAY, "expiration_of_policy")

    assert (reminder.queued, expiry.queued) == (1, 1)
    assert dict(Outbox.objects.filter(policy=policy).values_list("notification_type", "event_date")) == {
        "need_for_renewal": TODAY - 5 * DAY,
        "expiration_of_policy": TODAY,
    }
    assert decision_of(policy, "need_for_renewal").outcome == "queued"
    assert decision_of(policy, "expiration_of_policy").outcome == "queued"


@pytest.mark.parametrize(
    "notification_type", ["activation_of_policy", "starting_of_policy", "expiration_of_policy", "renewal_of_policy"]
)
def test_it_does_not_lose_the_messages_of_a_day_without_a_run(
    clock: Any, enable: Any, due: Any, notification_type: str
) -> None:
    """§13.7: upstream matched event dates exactly equal to the run day, so a day on which beat or the worker
    was down lost its messages for good. Here the next run catches the day up."""
    policy = due(notification_type, TODAY)
    run_on(clock, TODAY - DAY, notification_type)

    result = run_on(clock, TODAY + 2 * DAY, notification_type)

    assert result.queued == 1
    assert Outbox.objects.get(policy=policy).event_date == TODAY


def test_it_checks_expiry_against_status_and_conversion_products(
    clock: Any, enable: Any, make_family: Any, make_policy: Any, due: Any
) -> None:
    """§13.8: upstream sent expiry messages for policies in any status (idle, suspended, ready) and for policies
    already renewed to the product's conversion product, checking each policy with its own query. Here only the
    active/expired, really not renewed policy is notified (query count: test_detection_scale.py)."""
    plus = Product.objects.create(code="PLUS", name="Plus")
    basic = Product.objects.create(code="BASIC2", name="Basic", conversion_product=plus)
    notified = due("expiration_of_policy", TODAY, product=basic)
    for status in (Policy.Status.IDLE, Policy.Status.SUSPENDED, Policy.Status.READY):
        due("expiration_of_policy", TODAY, product=basic, status=status)
    converted = due("expiration_of_policy", TODAY, product=basic)
    make_policy(
        converted.family,
        product=plus,
        stage=Policy.Stage.RENEWAL,
        status=Policy.Status.ACTIVE,
        start_date=TODAY + DAY,
        effective_date=TODAY + DAY,
        expiry_date=TODAY + 365 * DAY,
    )

    result = run_detection("expiration_of_policy")

    assert result.queued == 1
    assert list(Outbox.objects.values_list("policy_id", flat=True)) == [notified.pk]
    assert not Decision.objects.exclude(policy=notified).exists()


def test_it_treats_a_null_phone_as_no_phone_and_a_missing_consent_row_as_no_consent(
    clock: Any, enable: Any, make_family: Any, make_policy: Any
) -> None:
    """§13.9: upstream counted a NULL phone as a phone (and texted None), and a family without a consent row as
    "phone, no approval". Here a family whose phones are all NULL/blank is skipped as no_valid_phone, and a
    family with a valid phone but no consent row is skipped as no_consent; neither reaches the outbox."""
    null_phones = make_family(head_phone=None, members=[None, "  "], consent=APPROVED)
    no_consent_row = make_family(consent=APPROVED)
    FamilyNotification.objects.filter(family=no_consent_row).delete()
    assert not FamilyPhone.objects.filter(family=null_phones).exists()
    assert FamilyPhone.objects.filter(family=no_consent_row).exists()
    without_phone = make_policy(null_phones, **due_fields("expiration_of_policy", TODAY))
    without_consent = make_policy(no_consent_row, **due_fields("expiration_of_policy", TODAY))

    result = run_detection("expiration_of_policy")

    assert result.skipped == {"no_consent": 1, "no_valid_phone": 1}
    assert not Outbox.objects.exists()
    assert decision_of(without_phone, "expiration_of_policy").reason == "no_valid_phone"
    assert decision_of(without_consent, "expiration_of_policy").reason == "no_consent"
