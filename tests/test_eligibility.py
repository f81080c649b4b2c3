from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from notifier import services
from notifier.eligibility import Mode, filter_by_mode, parse_mode
from notifier.models import Family, FamilyNotification, Insuree
from notifier.phones import refresh_family_phones

APPROVED = {"approvalOfNotification": True}
DECLINED = {"approvalOfNotification": False}


def modes_of(family: Family) -> set[Mode]:
    """Every mode (besides ALL) whose queryset holds the family."""
    current = Family.objects.current()
    return {mode for mode in Mode if mode is not Mode.ALL and filter_by_mode(current, mode).filter(pk=family.pk)}


def only_mode(family: Family) -> Mode:
    found = modes_of(family)
    assert len(found) == 1, f"family {family.pk} is in modes {sorted(found)}"
    assert filter_by_mode(Family.objects.current(), Mode.ALL).filter(pk=family.pk).exists()
    return found.pop()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("head_phone", "members", "consent", "expected"),
    [
        ("0712345678", [], APPROVED, Mode.APPROVAL_AND_PHONE),
        ("+255 712 345 678", [], DECLINED, Mode.PHONE_NO_APPROVAL),
        (None, [], APPROVED, Mode.APPROVAL_NO_PHONE),
        (None, [], DECLINED, Mode.NEITHER),
        ("", [], APPROVED, Mode.APPROVAL_NO_PHONE),
        ("   ", [], DECLINED, Mode.NEITHER),
        ("call officer", [], APPROVED, Mode.APPROVAL_NO_PHONE),
        ("12345", [], DECLINED, Mode.NEITHER),
        ("0000000000", [], APPROVED, Mode.APPROVAL_NO_PHONE),
        (None, [None, "", "n/a", "0756123456"], APPROVED, Mode.APPROVAL_AND_PHONE),
        ("", ["0688123456"], DECLINED, Mode.PHONE_NO_APPROVAL),
        (None, [None, "", "garbage"], APPROVED, Mode.APPROVAL_NO_PHONE),
    ],
    ids=[
        "valid-approved",
        "valid-declined",
        "null-approved",
        "null-declined",
        "blank-approved",
        "whitespace-declined",
        "garbage-approved",
        "short-declined",
        "zeros-approved",
        "member-only-approved",
        "member-only-declined",
        "members-all-invalid",
    ],
)
def test_it_places_each_family_in_exactly_one_mode(
    make_family: Callable[..., Family],
    head_phone: str | None,
    members: list[str | None],
    consent: dict[str, Any],
    expected: Mode,
) -> None:
    family = make_family(head_phone=head_phone, members=members, consent=consent)
    assert only_mode(family) is expected


@pytest.mark.django_db
def test_it_counts_a_family_without_consent_row_as_no_approval(make_family: Callable[..., Family]) -> None:
    with_phone = make_family(head_phone="0712345678", consent=APPROVED)
    without_phone = make_family(head_phone=None, consent=APPROVED)
    FamilyNotification.objects.filter(family__in=[with_phone, without_phone]).delete()

    assert only_mode(with_phone) is Mode.PHONE_NO_APPROVAL
    assert only_mode(without_phone) is Mode.NEITHER


@pytest.mark.django_db
def test_it_does_not_repeat_upstream_defect_9(make_family: Callable[..., Family]) -> None:
    """SPEC §13.9: upstream treated a NULL phone as a phone and put families without a consent row in mode 3."""
    null_phone = make_family(head_phone=None, consent=DECLINED)
    null_phone_no_row = make_family(head_phone=None, consent=APPROVED)
    FamilyNotification.objects.filter(family=null_phone_no_row).delete()

    phone_no_approval = filter_by_mode(Family.objects.current(), Mode.PHONE_NO_APPROVAL)
    assert not phone_no_approval.filter(pk__in=[null_phone.pk, null_phone_no_row.pk]).exists()
    neither = filter_by_mode(Family.objects.current(), Mode.NEITHER)
    assert set(neither.values_list("pk", flat=True)) == {null_phone.pk, null_phone_no_row.pk}


@pytest.mark.django_db
def test_it_ignores_a_retired_consent_row(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="0712345678", consent=APPROVED)
    FamilyNotification.objects.filter(family=family).update(validity_to=timezone.now())
    assert only_mode(family) is Mode.PHONE_NO_APPROVAL


@pytest.mark.django_db
def test_it_ignores_the_phone_of_a_history_row(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="0712345678", consent=APPROVED)
    assert only_mode(family) is Mode.APPROVAL_AND_PHONE
    head = Insuree.objects.current().get(family=family, head=True)

    services.update_insuree(head.uuid, {"phone": None})

    history = Insuree.objects.get(legacy_id=head.pk)
    assert history.phone == "0712345678" and history.validity_to is not None and history.family_id == family.pk
    assert only_mode(family) is Mode.APPROVAL_NO_PHONE


@pytest.mark.django_db
def test_it_ignores_the_phone_of_a_retired_member(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone=None, members=["0712345678"], consent=DECLINED)
    assert only_mode(family) is Mode.PHONE_NO_APPROVAL
    member = Insuree.objects.current().get(family=family, head=False)
    # A member retired directly in the database, as openIMIS does it; the phone rule must follow on refresh.
    Insuree.objects.filter(pk=member.pk).update(validity_to=timezone.now() - dt.timedelta(minutes=1))
    refresh_family_phones()

    assert only_mode(family) is Mode.NEITHER


@pytest.mark.django_db
def test_it_prefers_the_head_then_the_first_member_by_id(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="garbage", members=["0756111111", "0756222222"], consent=APPROVED)
    first_member = Insuree.objects.current().filter(family=family, head=False).order_by("id").first()
    assert first_member is not None
    assert family.sms_phone.insuree_id == first_member.pk
    assert family.sms_phone.phone == "+255756111111"

    head = Insuree.objects.current().get(family=family, head=True)
    services.update_insuree(head.uuid, {"phone": "0712 345 678"})
    family.refresh_from_db()
    assert Family.objects.get(pk=family.pk).sms_phone.phone == "+255712345678"


@pytest.mark.django_db
def test_it_leaves_deleted_families_out_of_every_mode(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="0712345678", consent=APPROVED)
    services.delete_family(family.uuid)
    for mode in Mode:
        assert not filter_by_mode(Family.objects.current(), mode).filter(uuid=family.uuid).exists()


@pytest.mark.django_db
def test_it_annotates_the_counts_of_each_mode_consistently(make_family: Callable[..., Family]) -> None:
    make_family(head_phone="0712345678", consent=APPROVED)
    make_family(head_phone=None, consent=APPROVED)
    make_family(head_phone="0712345679", consent=DECLINED)
    make_family(head_phone="", consent=DECLINED)
    make_family(head_phone="", members=["0712345670"], consent=DECLINED)
    current = Family.objects.current()

    counts = {mode: filter_by_mode(current, mode).count() for mode in Mode}

    assert counts == {
        Mode.ALL: 5,
        Mode.APPROVAL_AND_PHONE: 1,
        Mode.APPROVAL_NO_PHONE: 1,
        Mode.PHONE_NO_APPROVAL: 2,
        Mode.NEITHER: 1,
    }


@pytest.mark.parametrize(("raw", "expected"), [(0, Mode.ALL), ("1", Mode.APPROVAL_AND_PHONE), (" 4 ", Mode.NEITHER)])
def test_it_parses_a_mode_from_user_input(raw: object, expected: Mode) -> None:
    assert parse_mode(raw) is expected


@pytest.mark.parametrize("raw", [5, -1, "9", "one", "", None, True, 1.5, "1.0", [1]])
def test_it_refuses_a_mode_outside_0_to_4_naming_the_field(raw: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        parse_mode(raw, field="mode")
    assert list(excinfo.value.message_dict) == ["mode"]


@pytest.mark.django_db
def test_it_refuses_a_bad_mode_in_filter_by_mode() -> None:
    with pytest.raises(ValidationError) as excinfo:
        filter_by_mode(Family.objects.current(), 7)
    assert "mode" in excinfo.value.message_dict
