"""Detection's rules across policies: no expiry reminder for a renewed policy, starting supersedes activation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from notifier.detection import run_all_detection, run_detection
from notifier.models import Outbox, Policy, Product
from notifier.types import NOTIFICATION_TYPES
from tests.factories import DAY, EXPIRY_TYPES, TODAY, at, decision_of, run_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def products(db: None) -> dict[str, Product]:
    plus = Product.objects.create(code="PLUS", name="Plus")
    basic = Product.objects.create(code="BASIC2", name="Basic", conversion_product=plus)
    other = Product.objects.create(code="OTHER", name="Other")
    return {"basic": basic, "plus": plus, "other": other}


def _renewal(
    make_policy: Callable[..., Policy], policy: Policy, product: Product, status: int = Policy.Status.IDLE
) -> Policy:
    assert policy.expiry_date is not None
    start = policy.expiry_date + DAY
    return make_policy(
        policy.family,
        product=product,
        stage=Policy.Stage.RENEWAL,
        status=status,
        start_date=start,
        effective_date=None,
        expiry_date=start + 364 * DAY,
        validity_from=at(TODAY - 30 * DAY),
    )


@pytest.mark.parametrize("notification_type", EXPIRY_TYPES)
@pytest.mark.parametrize("status", [Policy.Status.IDLE, Policy.Status.READY, Policy.Status.ACTIVE])
def test_it_does_not_remind_a_policy_renewed_with_the_same_product(
    clock: Any, enable: Any, due: Any, make_policy: Any, products: Any, notification_type: str, status: int
) -> None:
    policy = due(notification_type, TODAY, product=products["basic"])
    _renewal(make_policy, policy, products["basic"], status)

    assert run_detection(notification_type).queued == 0


@pytest.mark.parametrize("notification_type", EXPIRY_TYPES)
def test_it_does_not_remind_a_policy_renewed_to_its_conversion_product(
    clock: Any, enable: Any, due: Any, make_policy: Any, products: Any, notification_type: str
) -> None:
    policy = due(notification_type, TODAY, product=products["basic"])
    _renewal(make_policy, policy, products["plus"])

    assert run_detection(notification_type).queued == 0


@pytest.mark.parametrize("notification_type", EXPIRY_TYPES)
def test_it_reminds_a_policy_followed_by_another_product(
    clock: Any, enable: Any, due: Any, make_policy: Any, products: Any, notification_type: str
) -> None:
    """A different product is not a renewal; nor is the conversion direction reversed (plus -> basic)."""
    other = due(notification_type, TODAY, product=products["basic"])
    _renewal(make_policy, other, products["other"])
    reversed_direction = due(notification_type, TODAY, product=products["plus"])
    _renewal(make_policy, reversed_direction, products["basic"])

    run_detection(notification_type)

    assert set(Outbox.objects.values_list("policy_id", flat=True)) == {other.pk, reversed_direction.pk}


@pytest.mark.parametrize("notification_type", EXPIRY_TYPES)
def test_it_ignores_renewals_of_another_family_earlier_starts_and_retired_versions(
    clock: Any, enable: Any, due: Any, make_family: Any, make_policy: Any, products: Any, notification_type: str
) -> None:
    policy = due(notification_type, TODAY, product=products["basic"])
    another_family = _renewal(make_policy, policy, products["basic"])
    Policy.objects.filter(pk=another_family.pk).update(family=make_family())
    same_day = _renewal(make_policy, policy, products["basic"])
    Policy.objects.filter(pk=same_day.pk).update(start_date=policy.expiry_date)  # not *after* expiry
    retired = _renewal(make_policy, policy, products["basic"])
    retired.retire(at(TODAY - DAY))

    assert run_detection(notification_type).queued == 1


def test_it_sends_starting_only_when_activation_falls_on_the_start_day(clock: Any, enable: Any, due: Any) -> None:
    policy = due("activation_of_policy", TODAY, start_date=TODAY, effective_date=TODAY)

    results = run_all_detection()

    by_type = {result.notification_type: result for result in results}
    assert by_type["activation_of_policy"].skipped == {"superseded_by_starting": 1}
    assert by_type["starting_of_policy"].queued == 1
    assert list(Outbox.objects.values_list("notification_type", flat=True)) == ["starting_of_policy"]
    assert decision_of(policy, "activation_of_policy").reason == "superseded_by_starting"


def test_it_sends_activation_on_the_start_day_when_starting_is_disabled(clock: Any, enable: Any, due: Any) -> None:
    due("activation_of_policy", TODAY, start_date=TODAY, effective_date=TODAY)
    enable(starting_of_policy=False)

    results = run_all_detection()

    assert [result.notification_type for result in results] == [
        name for name in NOTIFICATION_TYPES if name != "starting_of_policy"
    ]
    assert list(Outbox.objects.values_list("notification_type", flat=True)) == ["activation_of_policy"]


def test_it_sends_activation_and_later_starting_on_different_days(clock: Any, enable: Any, due: Any) -> None:
    policy = due("activation_of_policy", TODAY)  # cover starts TODAY + 5

    run_on(clock, TODAY, "activation_of_policy")
    run_on(clock, TODAY + 5 * DAY, "starting_of_policy")

    assert sorted(Outbox.objects.filter(policy=policy).values_list("notification_type", flat=True)) == [
        "activation_of_policy",
        "starting_of_policy",
    ]
