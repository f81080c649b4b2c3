"""The consent services (create/update/delete family notification policy): defaults, seed payload, refusals."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from notifier import services
from notifier.models import Family, FamilyNotification, Language
from tests.services_helpers import consent_rows, mirror_snapshot

pytestmark = pytest.mark.django_db

CONSENT_SERVICES = [
    services.create_family_notification_policy,
    services.update_family_notification_policy,
    services.delete_family_notification_policy,
]


@pytest.fixture
def bare_family(make_family: Callable[..., Family]) -> Family:
    """A current family whose consent row was removed (data from before the notifier existed)."""
    family = make_family(head_phone="0712345678")
    FamilyNotification.objects.filter(family=family).delete()
    return family


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
