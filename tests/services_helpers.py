"""What the service test files share: member payloads, and a snapshot of the mirror tables a refusal must keep."""

from __future__ import annotations

from typing import Any

from notifier import services
from notifier.models import Family, FamilyNotification, FamilyPhone, Insuree


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
