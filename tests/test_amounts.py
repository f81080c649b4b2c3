"""Issue 14.7: {AmountToBePaid} — what renewing costs, by openIMIS's rules for a policy's value. The first cases
restate openIMIS's own (policy module, tests of policy values: same products and families, same expected values
for a new policy), then the same families renewing (no registration); every expectation is computed by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from notifier.amounts import Member, format_amount, policy_value
from notifier.models import Family, Insuree, NotificationTemplate, Outbox, Policy, Product
from notifier.rendering import render_outbox

TODAY = dt.date(2026, 11, 28)  # age of majority 18: born after 2008-11-28 is a child
HEAD = Member(dt.date(1985, 5, 5), 1)
SPOUSE = Member(dt.date(1989, 9, 9), 8)
CHILD = Member(dt.date(2010, 3, 3), 4)
OTHER_ADULT = Member(dt.date(1950, 1, 1), 7)
OTHER_CHILD = Member(dt.date(2015, 1, 1), 7)

BASIS = {"max_members": 5, "premium_adult": 300, "premium_child": 200, "registration_lump_sum": 250}
BASIS |= {"general_assembly_lump_sum": 130}
LUMP = {"max_members": 5, "lump_sum": 200, "threshold": 2, "premium_adult": 300, "premium_child": 200}
LUMP |= {"registration_fee": 10, "general_assembly_fee": 5}
CAPPED = {**LUMP, "max_members": 2, "threshold": 1}


def product(**fields: Any) -> Product:
    return Product(code="P", name="P", **fields)


def value(fields: dict[str, Any], members: list[Member], stage: str, **kwargs: Any) -> Decimal:
    return policy_value(product(**fields), members, stage=stage, today=kwargs.pop("today", TODAY), **kwargs)


@pytest.mark.parametrize(
    ("fields", "members", "new", "renewal"),
    [
        # openIMIS "basis": premiums per member, registration and assembly lump sums.
        (BASIS, [HEAD, SPOUSE], "980", "730"),  # 2 x 300 + 250 + 130 | 2 x 300 + 130
        (BASIS, [HEAD, SPOUSE, CHILD], "1180", "930"),  # 2 x 300 + 200 + 250 + 130 | 600 + 200 + 130
        # openIMIS "lump sum": lump 200 covers 2 members; fees per member.
        (LUMP, [HEAD, SPOUSE], "230", "210"),  # 200 + 2 x 10 + 2 x 5 | 200 + 2 x 5
        (LUMP, [HEAD, SPOUSE, CHILD], "445", "415"),  # 200 + 1 x 200 + 3 x 10 + 3 x 5 | 200 + 200 + 15
        # openIMIS "max members": 2 places, threshold 1; the child finds no place and is not counted.
        (CAPPED, [HEAD, SPOUSE], "530", "510"),  # 200 + 300 + 2 x 10 + 2 x 5 | 200 + 300 + 10
        (CAPPED, [HEAD, SPOUSE, CHILD], "530", "510"),
        # "other" members (relationship 7) always pay their premium on top of the lump sum.
        (LUMP, [HEAD, SPOUSE, OTHER_ADULT, OTHER_CHILD], "760", "720"),  # 200 + 300 + 200 + 4 x 10 + 4 x 5 | - 40
    ],
)
def test_policy_values_as_openimis_computes_them(
    fields: dict[str, Any], members: list[Member], new: str, renewal: str
) -> None:
    assert value(fields, members, Policy.Stage.NEW) == Decimal(new)
    assert value(fields, members, Policy.Stage.RENEWAL) == Decimal(renewal)


def test_without_a_lump_sum_members_beyond_the_threshold_pay_nothing_as_in_openimis() -> None:
    # openIMIS counts only the members within the threshold when there is no lump sum: 1 x 300, not 2 x 300.
    assert value({"premium_adult": 300, "threshold": 1}, [HEAD, SPOUSE], Policy.Stage.RENEWAL) == Decimal(300)


def test_a_member_turning_18_today_is_still_a_child() -> None:
    turning = Member(dt.date(2008, 11, 28), 4)
    assert value({"premium_adult": 300, "premium_child": 200}, [HEAD, turning], Policy.Stage.RENEWAL) == Decimal(500)
    older = Member(dt.date(2008, 11, 27), 4)
    assert value({"premium_adult": 300, "premium_child": 200}, [HEAD, older], Policy.Stage.RENEWAL) == Decimal(600)


def test_an_early_renewal_gets_the_renewal_discount() -> None:
    # 10 % off when renewing on or before expiry + 1 day - 2 months = 2026-11-01.
    fields = {**BASIS, "renewal_discount_perc": 10, "renewal_discount_period": 2}
    expiry = dt.date(2026, 12, 31)
    early = value(fields, [HEAD, SPOUSE], Policy.Stage.RENEWAL, today=dt.date(2026, 11, 1), previous_expiry=expiry)
    late = value(fields, [HEAD, SPOUSE], Policy.Stage.RENEWAL, today=dt.date(2026, 11, 2), previous_expiry=expiry)
    assert (early, late) == (Decimal("657"), Decimal("730"))


@pytest.mark.parametrize(
    ("amount", "language", "decimals", "shown"),
    [
        ("12500", "en", 0, "TZS 12,500"),
        ("12500", "sw", 0, "TZS 12,500"),
        ("12500", "fr", 0, "12 500 TZS"),
        ("1234567.5", "fr", 2, "1 234 567,50 TZS"),
        ("657", "en", 2, "TZS 657.00"),
        ("1234.5", "en", 0, "TZS 1,235"),
    ],
)
def test_amounts_are_written_per_language(amount: str, language: str, decimals: int, shown: str) -> None:
    assert format_amount(Decimal(amount), language, "TZS", decimals) == shown


@pytest.fixture
def priced(db: None) -> Product:
    return Product.objects.create(code="PRICED", name="Priced", **BASIS)


def family_outbox(
    make_family: Callable[..., Family], make_policy: Callable[..., Policy], product: Product, kind: str, **policy: Any
) -> Outbox:
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "fr"})
    Insuree.objects.filter(family=family).update(dob=dt.date(1985, 5, 5))
    Insuree.objects.create(
        chf_id="SP1", last_name="X", other_names="Y", family=family, dob=dt.date(1989, 9, 9), relationship=8
    )
    Insuree.objects.create(
        chf_id="CH1", last_name="X", other_names="Z", family=family, dob=dt.date(2012, 1, 1), relationship=4
    )
    made = make_policy(family, product=product, **policy)
    assert made.expiry_date is not None
    return Outbox.objects.create(
        policy=made,
        family=family,
        notification_type=kind,
        event_date=made.expiry_date,
        recipient="+255712345678",
        language="fr",
    )


@pytest.mark.django_db
def test_a_renewal_reminder_says_what_renewing_costs(
    make_family: Callable[..., Family], make_policy: Callable[..., Policy], priced: Product, settings: Any
) -> None:
    settings.NOTIFIER = {**settings.NOTIFIER, "currency": "TZS"}
    NotificationTemplate.objects.filter(notification_type="need_for_renewal", language_id="fr").update(
        text="{Name}, renouvelez avant le {ExpiryDate}: {AmountToBePaid}.", edited=True
    )
    row = family_outbox(make_family, make_policy, priced, "need_for_renewal", expiry_date=dt.date(2026, 12, 31))
    # 2 adults x 300 + 1 child x 200 + assembly 130 (no registration on renewal)
    assert render_outbox(row, dt.date(2026, 12, 26)).text.endswith("renouvelez avant le 31/12/2026: 930 TZS.")


@pytest.mark.django_db
def test_a_renewal_message_says_the_value_entered(
    make_family: Callable[..., Family], make_policy: Callable[..., Policy], priced: Product
) -> None:
    NotificationTemplate.objects.filter(notification_type="renewal_of_policy", language_id="fr").update(
        text="Renouvelée: {AmountToBePaid}.", edited=True
    )
    row = family_outbox(make_family, make_policy, priced, "renewal_of_policy", value=Decimal("1250.00"))
    assert render_outbox(row).text == "Renouvelée: 1 250 TZS."


@pytest.mark.django_db
def test_amount_to_be_paid_is_refused_where_no_renewal_is_asked() -> None:
    template = NotificationTemplate.objects.get(notification_type="activation_of_policy", language_id="en")
    template.text = "Active! Pay {AmountToBePaid}."
    with pytest.raises(ValidationError, match=r"\{AmountToBePaid\} is known only for"):
        template.full_clean()
    renewal = NotificationTemplate.objects.get(notification_type="need_for_renewal", language_id="en")
    renewal.text = "Renew: {AmountToBePaid}."
    renewal.full_clean()
