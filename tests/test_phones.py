from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import time_machine
from django.utils import timezone

from notifier import services
from notifier.dispatch import dispatch
from notifier.models import Family, FamilyPhone, Insuree
from notifier.phones import family_phone, normalize_phone, pick_family_phone, refresh_family_phones


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # Tanzania, the default region: local, international, with separators, both international prefixes
        ("0712345678", None, "+255712345678"),
        ("+255 712 345 678", None, "+255712345678"),
        ("255712345678", None, "+255712345678"),
        ("(0712) 345-678", None, "+255712345678"),
        ("000255712345678", None, "+255712345678"),
        ("00255712345678", None, "+255712345678"),
        ("tel:+255712345678", None, "+255712345678"),
        ("  0754 111 222 ", None, "+255754111222"),
        # Kenya, France, Nepal, Cameroon: local form in their own region, international form from anywhere
        ("0712345678", "KE", "+254712345678"),
        ("+254 712 345678", None, "+254712345678"),
        ("06 12 34 56 78", "fr", "+33612345678"),
        ("+33 6 12 34 56 78", None, "+33612345678"),
        ("0033612345678", None, "+33612345678"),
        ("9812345678", "NP", "+9779812345678"),
        ("+977 981-2345678", None, "+9779812345678"),
        ("677 12 34 56", "CM", "+237677123456"),
        ("+237 6 77 12 34 56", None, "+237677123456"),
    ],
)
def test_it_normalizes_valid_numbers_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "n/a",
        "call officer",
        "12345",
        "0000000000",
        "+1 555",
        "+255712345678999",
        "0712 / 0754",
        "+255-CALL-ME",
    ],
)
def test_it_treats_garbage_as_no_valid_phone(raw: str | None) -> None:
    assert normalize_phone(raw) is None


def test_it_uses_the_configured_default_region(settings) -> None:
    settings.NOTIFIER_DEFAULT_REGION = "KE"
    assert normalize_phone("0712345678") == "+254712345678"
    settings.NOTIFIER_DEFAULT_REGION = "TZ"
    assert normalize_phone("0712345678") == "+255712345678"


def test_it_picks_the_head_first_then_members_by_id_skipping_invalid_numbers() -> None:
    assert pick_family_phone([(7, False, "0754111222"), (9, True, "0712345678")]) == (9, "+255712345678")
    assert pick_family_phone([(9, False, "0754999888"), (7, False, "0754111222"), (3, True, "n/a")]) == (
        7,
        "+255754111222",
    )
    assert pick_family_phone([(3, True, None), (4, False, ""), (5, False, "12345")]) is None


def test_it_stores_the_family_phone_by_the_sender_rule(make_family: Callable[..., Family]) -> None:
    with_head = make_family(head_phone="+255 712 345 678", members=["0754111222"])
    from_member = make_family(head_phone="call officer", members=[None, "0754 111 333", "0754111444"])
    without = make_family(head_phone=None, members=["", "12345"])

    assert family_phone(with_head) == "+255712345678"
    assert family_phone(from_member) == "+255754111333"
    assert family_phone(without) is None
    member = FamilyPhone.objects.get(family=from_member).insuree
    assert member.phone == "0754 111 333" and not member.head


def test_it_refreshes_family_phones_after_a_member_changes(make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="n/a", members=["0754111222"])
    head = Insuree.objects.current().get(family=family, head=True)
    services.update_insuree(head.uuid, {"phone": "0712 000 111"})
    refresh_family_phones([family.pk])
    assert family_phone(family) == "+255712000111"
    assert refresh_family_phones() == FamilyPhone.objects.count()


def test_it_catches_up_phones_changed_outside_the_service_at_the_next_dispatcher_run(
    make_family: Callable[..., Family],
) -> None:
    """openIMIS writes tblInsuree itself (no signal reaches us): the next run recomputes the families it touched."""
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        silent = make_family(head_phone=None)
        retired = make_family(head_phone="0712345678")
        untouched = make_family(head_phone="0754111222")
        dispatch(timezone.localdate())  # no type enabled: the lock, the catch-up, the run
    with time_machine.travel(start + dt.timedelta(hours=1), tick=False):
        head = Insuree.objects.get(pk=silent.head_insuree_id or 0)
        head.save_history()
        head.phone = "0765432100"
        head.save()
        Insuree.objects.filter(family=retired).update(validity_to=timezone.now())
        retired.retire()
        assert family_phone(silent) is None and family_phone(retired) == "+255712345678"  # stale until the run
    with time_machine.travel(start + dt.timedelta(hours=2), tick=False):
        dispatch(timezone.localdate())  # no type enabled: the lock, the catch-up, the run
    assert family_phone(silent) == "+255765432100"
    assert family_phone(retired) is None
    assert family_phone(untouched) == "+255754111222"
