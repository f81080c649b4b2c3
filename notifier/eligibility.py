"""Eligibility (SPEC §3, §6): a family's current consent, its opt-out and its phone, written once.

Detection annotates its candidates with `candidate_eligibility` (values: language, recipient) and the eligibility
modes (the seed's additional filter: admin, report, API) filter families with `approval_expression` and
`phone_expression`; all of them are built from the same three subqueries, so "approved" and "has a valid phone" mean
the same thing everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, QuerySet, Subquery

from notifier.models import ConsentChange, Decision, Family, FamilyNotification, FamilyPhone


class Mode(enum.IntEnum):
    ALL = 0
    APPROVAL_AND_PHONE = 1
    APPROVAL_NO_PHONE = 2
    PHONE_NO_APPROVAL = 3
    NEITHER = 4


MODE_LABELS = {
    Mode.ALL: "All",
    Mode.APPROVAL_AND_PHONE: "Approval and phone number",
    Mode.APPROVAL_NO_PHONE: "Approval only",
    Mode.PHONE_NO_APPROVAL: "Phone number only",
    Mode.NEITHER: "No approval and phone number",
}


def parse_mode(value: Any, field: str = "mode") -> Mode:
    """A Mode from user input ("1", 1); anything else is a ValidationError naming the field."""
    if isinstance(value, bool):
        raise ValidationError({field: f"must be one of 0-4, got {value!r}"})
    try:
        return Mode(int(str(value).strip()))
    except ValueError:
        raise ValidationError({field: f"must be one of 0-4, got {value!r}"}) from None


def current_consent(family: OuterRef) -> QuerySet[FamilyNotification]:
    """The family's current consent row (tblFamilySMS, ValidityTo NULL); none means no approval."""
    return FamilyNotification.objects.filter(family_id=family, validity_to__isnull=True)


def family_phone(family: OuterRef) -> QuerySet[FamilyPhone]:
    """The family's valid phone by the sender's rule (see notifier.phones); none means no valid phone."""
    return FamilyPhone.objects.filter(family_id=family)


def stopped(family: OuterRef) -> QuerySet[ConsentChange]:
    """The family's own STOP, when it is its latest consent change: made at or after the current consent row's
    ValidityFrom, which every later change moves on. One index probe per family, no extra query."""
    return ConsentChange.objects.filter(
        family_id=family,
        source=ConsentChange.Source.INBOUND_SMS,
        action=ConsentChange.Action.WITHDRAWN,
        # the ConsentChange row's family: an OuterRef is resolved against the query it sits in
        changed_at__gte=Subquery(current_consent(OuterRef("family_id")).values("validity_from")[:1]),
    )


def candidate_eligibility(family: OuterRef) -> dict[str, Subquery | Exists]:
    """Annotations for detection's candidates: approved (None: no consent row), sms_language, recipient (None: no
    valid phone), opted_out. Values rather than Exists: the decision needs the language and the phone."""
    return {
        "approved": Subquery(current_consent(family).values("approval_of_sms")[:1]),
        "sms_language": Subquery(current_consent(family).values("language_of_sms")[:1]),
        "recipient": Subquery(family_phone(family).values("phone")[:1]),
        "opted_out": Exists(stopped(family)),
    }


def ineligible_reason(candidate: Mapping[str, Any]) -> str:
    """Why a candidate annotated with `candidate_eligibility` may not be texted; "" when it may."""
    if not candidate["approved"]:
        if candidate.get("opted_out"):
            return Decision.Reason.OPTED_OUT.value
        return Decision.Reason.NO_CONSENT.value
    if not candidate["recipient"]:
        return Decision.Reason.NO_VALID_PHONE.value
    return ""


def ineligible_reason_sql(alias: str) -> tuple[list[str], list[Any]]:
    """`ineligible_reason` as CASE branches (and their parameters) over the same columns of `alias`."""
    branches = [
        f"WHEN {alias}.approved IS NOT TRUE AND {alias}.opted_out IS TRUE THEN %s",
        f"WHEN {alias}.approved IS NOT TRUE THEN %s",
        f"WHEN COALESCE({alias}.recipient, '') = '' THEN %s",
    ]
    reasons = Decision.Reason
    return branches, [reasons.OPTED_OUT.value, reasons.NO_CONSENT.value, reasons.NO_VALID_PHONE.value]


def approval_expression() -> Exists:
    """True when the family has a current consent row that approves SMS; no row counts as no approval."""
    return Exists(current_consent(OuterRef("pk")).filter(approval_of_sms=True))


def phone_expression() -> Exists:
    """True when the family has a valid phone by the sender's rule (see notifier.phones)."""
    return Exists(family_phone(OuterRef("pk")))


def annotate_eligibility(families: QuerySet[Family]) -> QuerySet[Family]:
    return families.annotate(sms_approved=approval_expression(), has_valid_phone=phone_expression())


def filter_by_mode(families: QuerySet[Family], mode: Mode | int) -> QuerySet[Family]:
    """Families of `families` in the given eligibility mode, annotated with sms_approved and has_valid_phone."""
    mode = parse_mode(mode)
    annotated = annotate_eligibility(families)
    if mode is Mode.ALL:
        return annotated
    approved = mode in (Mode.APPROVAL_AND_PHONE, Mode.APPROVAL_NO_PHONE)
    with_phone = mode in (Mode.APPROVAL_AND_PHONE, Mode.PHONE_NO_APPROVAL)
    conditions: dict[str, Any] = {"sms_approved": approved, "has_valid_phone": with_phone}
    return annotated.filter(**conditions)
