"""The family and insuree services: create, update with history, delete, refusals; a failing receiver rolls back."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from notifier import services, signals
from notifier.models import Family, FamilyNotification, FamilyPhone, Insuree, Location
from tests.services_helpers import head, member, mirror_snapshot

pytestmark = pytest.mark.django_db


def test_it_creates_a_family_with_its_members(village: Location) -> None:
    at = timezone.now() - dt.timedelta(days=3)
    family = services.create_family(
        [head(phone="0712345678"), member(phone="0756123456")],
        location=village,
        contributions={services.CONTRIBUTION_KEY: {"approvalOfNotification": True, "languageOfNotification": "sw"}},
        at=at,
    )
    family.refresh_from_db()
    assert family.is_current and family.validity_from == at and family.location == village
    assert family.head_insuree is not None and family.head_insuree.chf_id == "111111111"
    members = Insuree.objects.current().filter(family=family).order_by("id")
    assert [(m.chf_id, m.head, m.phone) for m in members] == [
        ("111111111", True, "0712345678"),
        ("222222222", False, "0756123456"),
    ]
    consent = FamilyNotification.objects.get(family=family)
    assert (consent.approval_of_sms, consent.language_of_sms) == (True, "sw")
    assert FamilyPhone.objects.get(family=family).phone == "+255712345678"


@pytest.mark.parametrize(
    ("members", "field"),
    [
        ([], "members"),
        ([member()], "members"),
        ([head(), head(chf_id="333")], "members"),
        ([head(chf_id="")], "members[0].chf_id"),
        ([head(chf_id="1234567890123")], "members[0].chf_id"),
        ([head(), member(last_name="")], "members[1].last_name"),
        ([head(other_names="")], "members[0].other_names"),
        ([head(phone="0" * 51)], "members[0].phone"),
        ([head(phone=712345678)], "members[0].phone"),
        ([head(chf_id=111)], "members[0].chf_id"),
        ([head(dob="1990-13-01")], "members[0].dob"),
    ],
)
def test_it_refuses_a_bad_family_naming_the_field(
    village: Location, members: list[services.MemberData], field: str
) -> None:
    before = mirror_snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.create_family(members, location=village)
    assert field in excinfo.value.message_dict, excinfo.value.message_dict
    assert mirror_snapshot() == before


def test_it_refuses_a_location_that_is_not_a_current_village(village: Location) -> None:
    before = mirror_snapshot()
    assert village.parent is not None
    with pytest.raises(ValidationError) as excinfo:
        services.create_family([head()], location=village.parent)
    assert "location" in excinfo.value.message_dict
    village.retire()
    with pytest.raises(ValidationError) as excinfo:
        services.create_family([head()], location=village)
    assert "location" in excinfo.value.message_dict
    assert mirror_snapshot() == before


@pytest.mark.parametrize(
    ("contributions", "field"),
    [
        (["PolicyNotification"], "contributions"),
        ({services.CONTRIBUTION_KEY: {"approvalOfNotification": "yes"}}, "approvalOfNotification"),
        ({services.CONTRIBUTION_KEY: {"languageOfNotification": "xx"}}, "languageOfNotification"),
        ({services.CONTRIBUTION_KEY: {"approval": True}}, "approval"),
        ({services.CONTRIBUTION_KEY: []}, "notification_data"),
        ({services.CONTRIBUTION_KEY: "yes"}, "notification_data"),
    ],
)
def test_it_refuses_bad_contributions_and_leaves_no_family(village: Location, contributions: Any, field: str) -> None:
    before = mirror_snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.create_family([head(phone="0712345678")], location=village, contributions=contributions)
    assert field in excinfo.value.message_dict, excinfo.value.message_dict
    assert mirror_snapshot() == before


def test_it_updates_a_family_keeping_a_history_row(make_family: Callable[..., Family], village: Location) -> None:
    family = make_family(consent={"approvalOfNotification": False})
    created_from = Family.objects.get(pk=family.pk).validity_from
    other_village = Location.objects.create(
        code="V2", name="Other village", type=Location.Type.VILLAGE, parent=village.parent
    )
    at = timezone.now()

    updated = services.update_family(
        family.uuid,
        location=other_village,
        contributions={services.CONTRIBUTION_KEY: {"approvalOfNotification": True}},
        at=at,
    )

    current = Family.objects.current().get(uuid=family.uuid)
    assert current.pk == family.pk == updated.pk
    assert (current.location_id, current.validity_from) == (other_village.pk, at)
    history = Family.objects.get(legacy_id=family.pk)
    assert (history.uuid, history.location_id, history.validity_from, history.validity_to) == (
        family.uuid,
        village.pk,
        created_from,
        at,
    )
    assert FamilyNotification.objects.get(family=family).approval_of_sms is True


def test_it_writes_no_history_row_when_nothing_changes(make_family: Callable[..., Family], village: Location) -> None:
    family = make_family()
    services.update_family(family.uuid, location=village)
    assert not Family.objects.filter(legacy_id=family.pk).exists()


@pytest.mark.parametrize(
    ("family_uuid", "kwargs", "field"),
    [
        ("nope", {}, "family_uuid"),
        (uuid.uuid4(), {}, "family_uuid"),
        (None, {"contributions": "x"}, "contributions"),
        (
            None,
            {"contributions": {services.CONTRIBUTION_KEY: {"languageOfNotification": "de"}}},
            "languageOfNotification",
        ),
    ],
)
def test_it_refuses_a_bad_family_update_writing_nothing(
    make_family: Callable[..., Family], family_uuid: Any, kwargs: dict[str, Any], field: str
) -> None:
    family = make_family(consent={"approvalOfNotification": False})
    other_village = Location.objects.create(
        code="V2",
        name="Other village",
        type=Location.Type.VILLAGE,
        parent=family.location.parent if family.location else None,
    )
    before = mirror_snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.update_family(family_uuid or family.uuid, location=other_village, **kwargs)
    assert field in excinfo.value.message_dict, excinfo.value.message_dict
    assert mirror_snapshot() == before
    assert Family.objects.get(pk=family.pk).location_id != other_village.pk


def test_it_refuses_to_move_a_family_out_of_a_village(make_family: Callable[..., Family]) -> None:
    family = make_family()
    assert family.location is not None
    before = mirror_snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.update_family(family.uuid, location=family.location.parent)
    assert "location" in excinfo.value.message_dict
    assert mirror_snapshot() == before


def test_it_deletes_a_family_by_closing_validity(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="0712345678", members=["0756123456"], consent={"approvalOfNotification": True})
    at = timezone.now()

    services.delete_family(family.uuid, at=at)

    assert Family.objects.get(pk=family.pk).validity_to == at
    assert not Insuree.objects.current().filter(family=family).exists()
    assert set(Insuree.objects.filter(family=family).values_list("validity_to", flat=True)) == {at}
    consent = FamilyNotification.objects.get(family=family)
    assert consent.validity_to is not None and consent.approval_of_sms is False
    assert not FamilyPhone.objects.filter(family=family).exists()
    with pytest.raises(ValidationError) as excinfo:
        services.delete_family(family.uuid)
    assert "family_uuid" in excinfo.value.message_dict


def test_it_updates_an_insuree_keeping_a_history_row(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="garbage", consent={"approvalOfNotification": True})
    insuree = Insuree.objects.current().get(family=family, head=True)
    assert not FamilyPhone.objects.filter(family=family).exists()
    at = timezone.now()

    services.update_insuree(insuree.uuid, {"phone": "0712345678", "last_name": "Kimaro"}, at=at)

    current = Insuree.objects.current().get(uuid=insuree.uuid)
    assert (current.pk, current.phone, current.last_name, current.validity_from) == (
        insuree.pk,
        "0712345678",
        "Kimaro",
        at,
    )
    history = Insuree.objects.get(legacy_id=insuree.pk)
    assert (history.phone, history.last_name, history.validity_to, history.uuid) == (
        "garbage",
        insuree.last_name,
        at,
        insuree.uuid,
    )
    assert FamilyPhone.objects.get(family=family).phone == "+255712345678"


@pytest.mark.parametrize(
    ("insuree_uuid", "changes", "field"),
    [
        ("bad", {"phone": "0712345678"}, "insuree_uuid"),
        (uuid.uuid4(), {"phone": "0712345678"}, "insuree_uuid"),
        (None, {"family": 3}, "family"),
        (None, {"head": False}, "head"),
        (None, {"chf_id": ""}, "chf_id"),
        (None, {"last_name": ""}, "last_name"),
        (None, {"phone": "1" * 51}, "phone"),
        (None, {"phone": 712345678}, "phone"),
        (None, {"dob": "yesterday"}, "dob"),
        (None, ["phone"], "changes"),
    ],
)
def test_it_refuses_a_bad_insuree_update_naming_the_field(
    make_family: Callable[..., Family], insuree_uuid: Any, changes: Any, field: str
) -> None:
    family = make_family(head_phone="0712345678")
    insuree = Insuree.objects.current().get(family=family, head=True)
    before = mirror_snapshot()
    with pytest.raises(ValidationError) as excinfo:
        services.update_insuree(insuree_uuid or insuree.uuid, changes)
    assert any(field in key for key in excinfo.value.message_dict), excinfo.value.message_dict
    assert mirror_snapshot() == before
    assert not Insuree.objects.filter(legacy_id=insuree.pk).exists()


# --- a failing receiver rolls the mutation back --------------------------------------------------------------


class ReceiverFailed(RuntimeError):
    pass


@pytest.fixture
def failing_receiver() -> Iterator[Callable[[Any], None]]:
    connected: list[Any] = []

    def connect(signal: Any) -> None:
        def explode(sender: Any, **kwargs: Any) -> None:
            raise ReceiverFailed("receiver failed")

        signal.connect(explode, weak=False, dispatch_uid="test-failing-receiver")
        connected.append(signal)

    yield connect
    for signal in connected:
        signal.disconnect(dispatch_uid="test-failing-receiver")


def test_it_rolls_a_created_family_back_when_a_receiver_fails(
    village: Location, failing_receiver: Callable[[Any], None]
) -> None:
    failing_receiver(signals.family_created)
    before = mirror_snapshot()
    with pytest.raises(ReceiverFailed):
        services.create_family(
            [head(phone="0712345678"), member()],
            location=village,
            contributions={services.CONTRIBUTION_KEY: {"approvalOfNotification": True}},
        )
    assert mirror_snapshot() == before
    assert not Insuree.objects.filter(chf_id__in=["111111111", "222222222"]).exists()


def test_it_rolls_an_update_and_a_delete_back_when_a_receiver_fails(
    make_family: Callable[..., Family], village: Location, failing_receiver: Callable[[Any], None]
) -> None:
    family = make_family(head_phone="0712345678", consent={"approvalOfNotification": False})
    other_village = Location.objects.create(code="V2", name="Other", type=Location.Type.VILLAGE, parent=village.parent)
    failing_receiver(signals.family_updated)
    failing_receiver(signals.family_deleted)
    failing_receiver(signals.insuree_changed)
    before = mirror_snapshot()

    with pytest.raises(ReceiverFailed):
        services.update_family(
            family.uuid,
            location=other_village,
            contributions={services.CONTRIBUTION_KEY: {"approvalOfNotification": True}},
        )
    with pytest.raises(ReceiverFailed):
        services.delete_family(family.uuid)
    with pytest.raises(ReceiverFailed):
        services.update_insuree(Insuree.objects.current().get(family=family, head=True).uuid, {"phone": None})

    assert mirror_snapshot() == before
    assert Family.objects.current().get(pk=family.pk).location_id == village.pk
