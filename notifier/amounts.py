"""{AmountToBePaid}: what a family pays for a policy of a product, by openIMIS's rules for a policy's value.

The rules (openIMIS policy module, policy values), restated:
- Members are the family's current insurees. Adults are at least `age_of_majority` years old; "other" members
  (relationship 7) are counted apart from the family proper.
- With a maximum number of members (MemberCount), members beyond it are not counted: adults first, then children,
  then other children, then other adults fill the places.
- With a threshold, the lump sum covers up to `threshold` members of the family proper (adults first); the extra
  adults and children beyond it pay their premium on top of the lump sum.
- Contribution: the lump sum plus the extra members' premiums, or without a lump sum each counted adult and child
  of the family proper at its premium (openIMIS charges no premium for members beyond a threshold there); plus
  every other adult and child at its premium.
- General assembly: its lump sum, or its fee per counted member. Registration (new policies only): its lump sum,
  or its fee per counted member.
- A renewal entered early enough (on or before the previous expiry + 1 day - RenewalDiscountPeriod months) gets
  RenewalDiscountPerc off.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from notifier.models import Insuree, Policy, Product
from notifier.types import BY_SLUG, Amount

OTHER_RELATIONSHIP = 7
ZERO = Decimal(0)


@dataclass(frozen=True)
class Member:
    dob: dt.date | None
    relationship: int | None = None


@dataclass(frozen=True)
class Counts:
    adults: int  # of the family proper, covered by the lump sum
    extra_adults: int  # of the family proper, beyond the threshold
    other_adults: int
    children: int
    extra_children: int
    other_children: int
    total: int


def _money(value: Decimal | int | None) -> Decimal:
    return Decimal(value) if value else ZERO


def _years_before(day: dt.date, years: int) -> dt.date:
    year = day.year - years
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def _months_before(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def family_counts(product: Product, members: Iterable[Member], today: dt.date, age_of_majority: int) -> Counts:
    majority = _years_before(today, age_of_majority)  # born on or after this day: a child
    adults = children = other_adults = other_children = 0
    for member in members:
        child = member.dob is not None and member.dob >= majority
        other = member.relationship == OTHER_RELATIONSHIP
        if other:
            other_children += child
            other_adults += not child
        else:
            children += child
            adults += not child
    if product.max_members:
        cap = product.max_members
        over_adults = max(0, adults - cap)
        over_children = max(0, adults + children - over_adults - cap)
        over_other_children = max(0, adults + children + other_children - over_adults - over_children - cap)
        over_other_adults = max(
            0,
            adults + other_adults + children + other_children - over_adults - over_other_children - over_children - cap,
        )
        adults -= over_adults
        children -= over_children
        other_children -= over_other_children
        other_adults -= over_other_adults
    extra_adults = extra_children = 0
    if product.threshold:
        extra_adults = max(0, adults - product.threshold)
        extra_children = max(0, children + adults - extra_adults - product.threshold)
    return Counts(
        adults=adults - extra_adults,
        extra_adults=extra_adults,
        other_adults=other_adults,
        children=children - extra_children,
        extra_children=extra_children,
        other_children=other_children,
        total=adults + other_adults + children + other_children,
    )


def policy_value(
    product: Product,
    members: Iterable[Member],
    *,
    stage: str,
    today: dt.date,
    age_of_majority: int = 18,
    previous_expiry: dt.date | None = None,
) -> Decimal:
    """What a policy of `product` entered on `today` costs the family of `members` (stage N new, R renewal)."""
    counts = family_counts(product, members, today, age_of_majority)
    adult, child = _money(product.premium_adult), _money(product.premium_child)
    if product.lump_sum:
        contribution = _money(product.lump_sum) + counts.extra_adults * adult + counts.extra_children * child
    else:
        contribution = counts.adults * adult + counts.children * child
    contribution += counts.other_adults * adult + counts.other_children * child
    if product.general_assembly_lump_sum:
        assembly = _money(product.general_assembly_lump_sum)
    else:
        assembly = counts.total * _money(product.general_assembly_fee)
    registration = ZERO
    if stage == Policy.Stage.NEW:
        if product.registration_lump_sum:
            registration = _money(product.registration_lump_sum)
        else:
            registration = counts.total * _money(product.registration_fee)
    value = contribution + assembly + registration
    if (
        stage == Policy.Stage.RENEWAL
        and previous_expiry is not None
        and product.renewal_discount_perc
        and product.renewal_discount_period
    ):
        deadline = _months_before(previous_expiry + dt.timedelta(days=1), product.renewal_discount_period)
        if today <= deadline:
            value -= value * Decimal(product.renewal_discount_perc) / 100
    return value


def current_members(family_id: int) -> list[Member]:
    rows = Insuree.objects.current().filter(family_id=family_id).values_list("dob", "relationship")
    return [Member(dob=dob, relationship=relationship) for dob, relationship in rows]


def renewal_product(policy: Policy) -> Product:
    """openIMIS renews into the product's conversion product when it has one."""
    product = policy.product
    conversion = product.conversion_product
    return conversion if conversion is not None and conversion.validity_to is None else product


def amount_to_be_paid(policy: Policy, notification_type: str, today: dt.date, age_of_majority: int) -> Decimal:
    """For renewal_of_policy the renewal's PolicyValue as entered (computed when openIMIS left it empty); for the
    types that ask for a renewal, what renewing now would cost for the family's current members."""
    if BY_SLUG[notification_type].amount is Amount.POLICY_VALUE:
        if policy.value is not None:
            return Decimal(policy.value)
        return policy_value(
            policy.product,
            current_members(policy.family_id),
            stage=Policy.Stage.RENEWAL,
            today=today,
            age_of_majority=age_of_majority,
        )
    return policy_value(
        renewal_product(policy),
        current_members(policy.family_id),
        stage=Policy.Stage.RENEWAL,
        today=today,
        age_of_majority=age_of_majority,
        previous_expiry=policy.expiry_date,
    )


def format_amount(amount: Decimal, language: str, currency: str, decimals: int) -> str:
    """12500 → "TZS 12,500" (en, sw) or "12 500 TZS" (fr); plain spaces only, so the SMS stays GSM-7."""
    quantum = Decimal(1).scaleb(-decimals)
    rounded = amount.quantize(quantum, rounding=ROUND_HALF_UP)
    text = f"{rounded:,.{decimals}f}"
    base = language.split("-")[0].lower()
    if base == "fr":
        text = text.replace(",", " ").replace(".", ",")
        return f"{text} {currency}".strip()
    return f"{currency} {text}".strip()
