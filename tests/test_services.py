from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from notifier import services, signals
from notifier.models import Family, FamilyNotification, FamilyPhone, Insuree, Language, Location

pytestmark = pytest.mark.django_db

CONSENT_SERVICES = [
    services.create_family_notification_policy,
    services.update_family_notification_policy,
    services.delete_family_notification_policy,
]


def head(**fields: Any) -> services.MemberData:
    values: dict[str, Any] = {"chf_id": "111111111", "last_name": "Mushi", "other_names": "Amani", "head": True}
    values.update(fields)
    return services.MemberData(**values)


def member(**fields: Any) -> services.MemberData:
    values: dict[str, Any] = {"chf_id": "222222222", "last_name": "Mushi", "other_names": "Neema"}
    values.update(fields)
    return services.MemberData(**values)


def consent_rows() -> list[tuple[int, bool | None, str | None, bool]]:
    return sorted(
        (row.family_id, row.approval_of_sms, row.language_of_sms, row.validity_to is None)
        for row in FamilyNotification.objects.all()
    )


def mirror_snapshot() -> tuple[int, int, int, int, list[tuple[int, bool | None, str | None, bool]]]:
    return (
        Family.objects.count(),
        Insuree.objects.count(),
        FamilyNotification.objects.count(),
        FamilyPhone.objects.count(),
        consent_rows(),
    )


@pytest.fixture
def bare_family(make_family: Callable[..., Family]) -> Family:
    """A current family whose consent row was removed (data from before the notifier existed)."""
    family = make_family(head_phone="0712345678")
    FamilyNotification.objects.filter(family=family).delete()
    return family


# --- consent services ---------------------------------------------------------------------------------------


def test_it_creates_consent_with_the_defaults(bare_family: Family) -> None:
    Language.objects.filter(code="sw").update(sort_order=0)

    row = services.create_family_notification_policy(bare_family.uuid, {})

    assert (row.approval_of_sms, row.language_of_sms, row.validity_to) == (False, "sw", None)
    assert FamilyNotification.objects.get(family=bare_family).language_of_sms == "sw"


def test_it_creates_consent_from_the_seed_payload(bare_family: Family) -> None:
    services.create_family_notification_policy(
        str(bare_family.uuid), {"approvalOfNotification": True, "languageOfNotification": "fr"}
    )
    row = FamilyNotification.objects.get(family=bare_family)
    assert (row.approval_of_sms, row.language_of_sms) == (True, "fr")


def test_it_refuses_a_second_consent_row(make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": True})
    before = consent_rows()
    with pytest.raises(ValidationError) as excinfo:
        services.create_family_notification_policy(family.uuid, {"approvalOfNotification": False})
    assert "family_uuid" in excinfo.value.message_dict
    assert consent_rows() == before


def test_it_updates_only_the_given_keys(make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "fr"})
    later = timezone.now() + dt.timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        services.update_family_notification_policy(family.uuid, {"languageOfNotification": "sw"})
    row = FamilyNotification.objects.get(family=family)
    assert (row.approval_of_sms, row.language_of_sms) == (True, "sw")
    assert row.validity_from == later

    services.update_family_notification_policy(family.uuid, {"approvalOfNotification": False})
    row.refresh_from_db()
    assert (row.approval_of_sms, row.language_of_sms) == (False, "sw")


def test_it_creates_the_row_when_updating_a_family_without_one(bare_family: Family) -> None:
    services.update_family_notification_policy(bare_family.uuid, {"approvalOfNotification": True})
    row = FamilyNotification.objects.get(family=bare_family)
    assert (row.approval_of_sms, row.language_of_sms, row.validity_to) == (True, "en", None)


def test_it_retires_consent_on_delete(make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": True})
    services.delete_family_notification_policy(family.uuid, {})
    row = FamilyNotification.objects.get(family=family)
    assert row.validity_to is not None
    assert row.approval_of_sms is False


def test_it_reuses_a_retired_row_when_consent_is_given_again(make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": True})
    services.delete_family_notification_policy(family.uuid)
    services.create_family_notification_policy(family.uuid, {"approvalOfNotification": True})
    row = FamilyNotification.objects.get(family=family)
    assert (row.approval_of_sms, row.validity_to) == (True, None)


BAD_CONSENT_INPUT = [
    pytest.param(lambda family: uuid.uuid4(), {}, "family_uuid", id="unknown-family"),
    pytest.param(lambda family: "not-a-uuid", {}, "family_uuid", id="malformed-uuid"),
    pytest.param(lambda family: None, {}, "family_uuid", id="none-uuid"),
    pytest.param(lambda family: 12, {}, "family_uuid", id="int-uuid"),
    pytest.param(
        lambda family: family.uuid, {"approvalOfNotification": "yes"}, "approvalOfNotification", id="string-approval"
    ),
    pytest.param(
        lambda family: family.uuid, {"approvalOfNotification": 1}, "approvalOfNotification", id="int-approval"
    ),
    pytest.param(
        lambda family: family.uuid, {"approvalOfNotification": None}, "approvalOfNotification", id="none-approval"
    ),
    pytest.param(
        lambda family: family.uuid, {"languageOfNotification": "de"}, "languageOfNotification", id="unknown-language"
    ),
    pytest.param(
        lambda family: family.uuid, {"languageOfNotification": 1}, "languageOfNotification", id="int-language"
    ),
    pytest.param(
        lambda family: family.uuid,
        {"approvalOfNotification": True, "approvalOfSMS": True},
        "approvalOfSMS",
        id="unknown-key",
    ),
    pytest.param(lambda family: family.uuid, {1: True}, "1", id="non-string-key"),
    pytest.param(lambda family: family.uuid, ["approvalOfNotification"], "notification_data", id="list-data"),
    pytest.param(lambda family: family.uuid, "approve", "notification_data", id="string-data"),
    pytest.param(lambda family: family.uuid, False, "notification_data", id="false-data"),
]


@pytest.mark.parametrize("service", CONSENT_SERVICES, ids=lambda s: s.__name__)
@pytest.mark.parametrize(("family_uuid", "notification_data", "field"), BAD_CONSENT_INPUT)
def test_it_refuses_bad_consent_input_naming_the_field_and_writing_nothing(
    make_family: Callable[..., Family],
    service: Callable[..., Any],
    family_uuid: Callable[[Family], Any],
    notification_data: Any,
    field: str,
) -> None:
    with_row = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "fr"})
    without_row = make_family()
    FamilyNotification.objects.filter(family=without_row).delete()
    for family in (with_row, without_row):
        before = mirror_snapshot()
        with pytest.raises(ValidationError) as excinfo:
            service(family_uuid(family), notification_data)
        assert field in excinfo.value.message_dict, excinfo.value.message_dict
        assert mirror_snapshot() == before


def test_it_refuses_consent_for_a_deleted_family(make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": True})
    services.delete_family(family.uuid)
    before = mirror_snapshot()
    for service in (services.create_family_notification_policy, services.update_family_notification_policy):
        with pytest.raises(ValidationError) as excinfo:
            service(family.uuid, {"approvalOfNotification": True})
        assert "family_uuid" in excinfo.value.message_dict
    assert mirror_snapshot() == before


# --- the family service -------------------------------------------------------------------------------------


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
