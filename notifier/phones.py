"""The one phone rule: parse with phonenumbers in NOTIFIER_DEFAULT_REGION, keep only valid numbers, as E.164.

Used by eligibility modes, detection, the report and delivery alike, so "has a phone" always means
"a number the sender would text".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from itertools import groupby
from operator import itemgetter

import phonenumbers
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifier.models import Family, FamilyPhone, Insuree
from notifier.settings import get_settings

_REFRESH_BATCH = 5000


def _parse_valid(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=100_000)
def _normalize(raw: str, region: str) -> str | None:
    number = _parse_valid(raw, region)
    if number is None and raw.startswith("00"):
        # "00" is the international prefix across most of the world, but not everywhere (Tanzania dials 000), so
        # "00255 ..." typed into a TZ record would otherwise be lost. A national number never starts with 00.
        number = _parse_valid("+" + raw[2:], region)
    return number


def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """E.164 form of `raw`, or None when it is missing, blank, unparsable or not a valid number."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    return _normalize(text, (region or get_settings().default_region).upper())


def recipient_problem(recipient: str | None) -> str | None:
    """Why delivery must not pass `recipient` to a gateway, or None when it is a valid number in E.164 form.

    Detection writes only E.164 numbers; a row written any other way (an import, a hand-made row, a bad edit)
    is refused here, as a permanent failure with this reason, instead of reaching the gateway.
    """
    if not recipient:
        return "recipient: missing"
    if not recipient.startswith("+") or not recipient[1:].isascii() or not recipient[1:].isdigit():
        return f"recipient: {recipient[:30]!r} is not in E.164 form (+ and digits only)"
    if _parse_valid(recipient, "ZZ") != recipient:
        return f"recipient: {recipient[:30]!r} is not a valid phone number"
    return None


def pick_family_phone(members: Iterable[tuple[int, bool, str | None]]) -> tuple[int, str] | None:
    """The sender's rule over (insuree id, is head, raw phone): head first, then by id; the first valid number."""
    for insuree_id, _head, raw in sorted(members, key=lambda m: (not m[1], m[0])):
        phone = normalize_phone(raw)
        if phone is not None:
            return insuree_id, phone
    return None


def refresh_family_phones(family_ids: Iterable[int] | None = None) -> int:
    """Recompute FamilyPhone for the given families (all current families when None). Returns rows written.

    One streamed query over current insurees with a non-blank phone, grouped by family in Python and chosen by
    `pick_family_phone` (the phone rule is phonenumbers', which SQL cannot express), then one delete and bulk
    inserts in one transaction.
    """
    scope = None if family_ids is None else sorted(set(family_ids))
    insurees = Insuree.objects.current().filter(family__validity_to__isnull=True, phone__isnull=False)
    insurees = insurees.exclude(phone="")
    if scope is not None:
        insurees = insurees.filter(family_id__in=scope)
    rows = insurees.order_by("family_id", "-head", "id").values_list("family_id", "id", "head", "phone")

    now = timezone.now()
    written = 0
    with transaction.atomic():
        stale = FamilyPhone.objects.all() if scope is None else FamilyPhone.objects.filter(family_id__in=scope)
        stale.delete()
        batch: list[FamilyPhone] = []
        for family_id, members in groupby(rows.iterator(chunk_size=_REFRESH_BATCH), key=itemgetter(0)):
            chosen = pick_family_phone((insuree_id, head, raw) for _family, insuree_id, head, raw in members)
            if chosen is None:
                continue
            insuree_id, phone = chosen
            batch.append(FamilyPhone(family_id=family_id, insuree_id=insuree_id, phone=phone, refreshed_at=now))
            if len(batch) >= _REFRESH_BATCH:
                FamilyPhone.objects.bulk_create(batch)
                written += len(batch)
                batch = []
        if batch:
            FamilyPhone.objects.bulk_create(batch)
            written += len(batch)
    return written


def refresh_changed_family_phones(since: datetime | None) -> int:
    """Catch up FamilyPhone with insuree changes made outside this service (openIMIS itself writes tblInsuree).

    openIMIS stamps ValidityFrom on a changed current row and ValidityTo on the history row or a retired one, so
    the families with such a stamp since `since` are the ones to recompute. None (the first run) recomputes all.
    """
    if since is None:
        return refresh_family_phones()
    changed = (
        Insuree.objects.filter(Q(validity_from__gte=since) | Q(validity_to__gte=since), family_id__isnull=False)
        .values_list("family_id", flat=True)
        .distinct()
    )
    family_ids = list(changed)
    return refresh_family_phones(family_ids) if family_ids else 0


def family_phone(family: Family) -> str | None:
    row = FamilyPhone.objects.filter(family=family).values_list("phone", flat=True).first()
    return row
