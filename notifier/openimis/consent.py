"""Writing consent (tblFamilySMS), the one openIMIS table the notifier writes, in the way the table allows.

- History table (openIMIS's PostgreSQL scripts: no primary key, only UNIQUE (FamilyID, ValidityTo)): a change
  closes the current row (ValidityTo = now) and inserts the new current row; history rows share the FamilyID;
  a retirement only closes the current row.
- One row per family (standalone's table, or a fork that made FamilyID the primary key): the row is changed in
  place, as the notifier always did.

Writes use queryset updates and inserts only, never `save()` on a loaded row: with history rows, an UPDATE keyed
on FamilyID would rewrite the history too. The model's fields carry the database's column spelling
(notifier.openimis.mode).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import connections
from django.utils import timezone

from notifier.openimis.mode import (
    FAMILY_SMS_SPELLINGS,
    FAMILY_SMS_TABLE,
    family_sms_spelling,
    is_attached,
    openimis_schema,
)
from notifier.openimis.models import FamilyNotification

_keeps_history: dict[str, bool] = {}


def keeps_history() -> bool:
    """True when tblFamilySMS may hold several rows per family (no unique index on FamilyID alone)."""
    if not is_attached():
        return False
    if "value" not in _keeps_history:
        column = FAMILY_SMS_SPELLINGS[family_sms_spelling()]["family"]
        with connections["default"].cursor() as cursor:
            cursor.execute(
                """
                SELECT count(*) FROM pg_index i
                JOIN pg_class c ON c.oid = i.indrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
                WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indnatts = 1 AND a.attname = %s
                """,
                [openimis_schema(), FAMILY_SMS_TABLE, column],
            )
            row = cursor.fetchone()
        _keeps_history["value"] = not (row and row[0])
    return _keeps_history["value"]


# pg_advisory_xact_lock(namespace, family id): serialises consent writes of one family in a history table, where
# NULL ValidityTo values never collide in UNIQUE (FamilyID, ValidityTo), so two first rows could both be current.
_ADVISORY_NAMESPACE = 0x6E6F7466  # "notf"


def current_consent(family_id: int, *, lock: bool = False) -> FamilyNotification | None:
    """The family's current consent row; `lock` (inside a transaction) holds off other writers of its consent."""
    if lock and keeps_history():
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_NAMESPACE, family_id])
    rows = FamilyNotification.objects.filter(family_id=family_id, validity_to__isnull=True)
    if lock:
        rows = rows.select_for_update()
    return rows.first()


def set_consent(
    family_id: int, *, approval: bool | None, language: str | None, at: dt.datetime | None = None
) -> FamilyNotification:
    """Make (approval, language) the family's current consent, from `at` (now)."""
    at = at or timezone.now()
    rows = FamilyNotification.objects.filter(family_id=family_id)
    if keeps_history():
        rows.filter(validity_to__isnull=True).update(validity_to=at)
        return FamilyNotification.objects.create(
            family_id=family_id, approval_of_sms=approval, language_of_sms=language, validity_from=at, validity_to=None
        )
    if rows.exists():  # the table holds one row per family: a retired row is reused
        rows.update(approval_of_sms=approval, language_of_sms=language, validity_from=at, validity_to=None)
    else:
        FamilyNotification.objects.create(
            family_id=family_id, approval_of_sms=approval, language_of_sms=language, validity_from=at, validity_to=None
        )
    consent = current_consent(family_id)
    assert consent is not None
    return consent


def retire_consent(family_ids: Iterable[int], at: dt.datetime | None = None) -> int:
    """Close the families' current consent rows; no message goes to them afterwards."""
    at = at or timezone.now()
    rows = FamilyNotification.objects.filter(family_id__in=list(family_ids), validity_to__isnull=True)
    if keeps_history():
        return rows.update(validity_to=at)
    return rows.update(validity_to=at, approval_of_sms=False)
