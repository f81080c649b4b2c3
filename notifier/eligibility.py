"""Eligibility modes (the seed's additional filter): one queryset function for admin, report, detection, API."""

from __future__ import annotations

import enum
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, QuerySet

from notifier.models import Family, FamilyNotification, FamilyPhone


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


def approval_expression() -> Exists:
    """True when the family has a current consent row that approves SMS; no row counts as no approval."""
    return Exists(
        FamilyNotification.objects.filter(family_id=OuterRef("pk"), validity_to__isnull=True, approval_of_sms=True)
    )


def phone_expression() -> Exists:
    """True when the family has a valid phone by the sender's rule (see notifier.phones)."""
    return Exists(FamilyPhone.objects.filter(family_id=OuterRef("pk")))


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
