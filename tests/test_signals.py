from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.dispatch import Signal

from notifier import services, signals
from notifier.models import Family, FamilyNotification, FamilyPhone, Insuree, Location

pytestmark = pytest.mark.django_db

Received = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def received() -> Iterator[Received]:
    """Records every family-service signal with its arguments, in order."""
    log: Received = []
    named: list[tuple[str, Signal]] = [
        ("family_created", signals.family_created),
        ("family_updated", signals.family_updated),
        ("family_deleted", signals.family_deleted),
        ("insuree_changed", signals.insuree_changed),
    ]
    for name, signal in named:

        def record(sender: Any, signal_name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            log.append((signal_name, {"sender": sender, **kwargs}))

        signal.connect(record, weak=False, dispatch_uid=f"test-record-{name}")
    yield log
    for name, signal in named:
        signal.disconnect(dispatch_uid=f"test-record-{name}")


def head(phone: str | None = "0712345678") -> services.MemberData:
    return services.MemberData(chf_id="900000001", last_name="Mrema", other_names="Rose", phone=phone, head=True)


def test_it_sends_family_created_with_the_contribution(village: Location, received: Received) -> None:
    consent = {"approvalOfNotification": True, "languageOfNotification": "fr"}
    family = services.create_family(
        [head()], location=village, contributions={services.CONTRIBUTION_KEY: consent, "other_module": {"x": 1}}
    )

    assert [name for name, _ in received] == ["family_created"]
    arguments = received[0][1]
    assert arguments["sender"] is Family
    assert arguments["family"].pk == family.pk
    assert arguments["contributions"] == {services.CONTRIBUTION_KEY: consent, "other_module": {"x": 1}}
    row = FamilyNotification.objects.get(family=family)
    assert (row.approval_of_sms, row.language_of_sms, row.validity_to) == (True, "fr", None)


@pytest.mark.parametrize(
    "contributions", [None, {}, {"other_module": {"x": 1}}, {services.CONTRIBUTION_KEY: None}], ids=str
)
def test_it_gives_a_family_without_contribution_a_default_consent_row(
    village: Location, received: Received, contributions: Any
) -> None:
    family = services.create_family([head()], location=village, contributions=contributions)

    assert received[0][1]["contributions"] == (contributions or {})
    row = FamilyNotification.objects.get(family=family)
    assert (row.approval_of_sms, row.language_of_sms, row.validity_to) == (False, "en", None)


def test_it_sends_family_updated_and_applies_the_contribution(
    make_family: Callable[..., Family], received: Received
) -> None:
    family = make_family(consent={"approvalOfNotification": False, "languageOfNotification": "sw"})
    received.clear()

    services.update_family(family.uuid, contributions={services.CONTRIBUTION_KEY: {"approvalOfNotification": True}})

    assert [name for name, _ in received] == ["family_updated"]
    assert received[0][1]["family"].pk == family.pk
    assert received[0][1]["contributions"] == {services.CONTRIBUTION_KEY: {"approvalOfNotification": True}}
    row = FamilyNotification.objects.get(family=family)
    assert (row.approval_of_sms, row.language_of_sms) == (True, "sw")


def test_it_leaves_consent_alone_on_an_update_without_contribution(
    make_family: Callable[..., Family], received: Received
) -> None:
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "fr"})
    before = FamilyNotification.objects.get(family=family)

    services.update_family(family.uuid)

    assert received[-1][0] == "family_updated"
    after = FamilyNotification.objects.get(family=family)
    assert (after.approval_of_sms, after.language_of_sms, after.validity_from) == (
        before.approval_of_sms,
        before.language_of_sms,
        before.validity_from,
    )


def test_it_sends_family_deleted_and_retires_consent(make_family: Callable[..., Family], received: Received) -> None:
    family = make_family(head_phone="0712345678", consent={"approvalOfNotification": True})
    assert FamilyPhone.objects.filter(family=family).exists()
    received.clear()

    services.delete_family(family.uuid, contributions={services.CONTRIBUTION_KEY: {}})

    assert [name for name, _ in received] == ["family_deleted"]
    assert received[0][1]["family"].pk == family.pk
    assert received[0][1]["family"].validity_to is not None
    row = FamilyNotification.objects.get(family=family)
    assert row.validity_to is not None and row.approval_of_sms is False
    assert not FamilyPhone.objects.filter(family=family).exists()


def test_it_sends_insuree_changed_and_the_family_phone_follows(
    make_family: Callable[..., Family], received: Received
) -> None:
    family = make_family(head_phone=None, members=["0756123456"], consent={"approvalOfNotification": True})
    assert FamilyPhone.objects.get(family=family).phone == "+255756123456"
    head_insuree = Insuree.objects.current().get(family=family, head=True)
    received.clear()

    services.update_insuree(head_insuree.uuid, {"phone": "0712345678"})

    assert [name for name, _ in received] == ["insuree_changed"]
    assert received[0][1]["insuree"].pk == head_insuree.pk
    phone = FamilyPhone.objects.get(family=family)
    assert (phone.insuree_id, phone.phone) == (head_insuree.pk, "+255712345678")


def test_it_sends_no_signal_when_the_input_is_refused(village: Location, received: Received) -> None:
    with pytest.raises(ValidationError, match="members"):
        services.create_family([], location=village)
    assert received == []
