"""Provenance of consent changes: who or what changed a family's consent, recorded by the consent service.

Callers say where a change comes from with `consent_source(...)` around the service call (the admin, an inbound
SMS, the family service); a change made without one is the service API's. The consent service calls `record()`
for every change it makes, so each row of tblFamilySMS's history has its provenance in `notifier_consent_change`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from notifier.models import ConsentChange

Source = ConsentChange.Source
Action = ConsentChange.Action


@dataclass(frozen=True)
class Provenance:
    source: str
    user_id: int | None = None
    phone: str = ""
    text: str = ""
    detail: str = ""


_current: ContextVar[Provenance | None] = ContextVar("consent_provenance", default=None)


@contextmanager
def consent_source(
    source: str, *, user: Any = None, phone: str = "", text: str = "", detail: str = ""
) -> Iterator[Provenance]:
    """Consent changes made inside this block are recorded with this provenance."""
    user_id = getattr(user, "pk", None) if user is not None and getattr(user, "is_authenticated", False) else None
    provenance = Provenance(source=source, user_id=user_id, phone=phone[:20], text=text[:500], detail=detail[:200])
    token = _current.set(provenance)
    try:
        yield provenance
    finally:
        _current.reset(token)


def current_provenance() -> Provenance:
    return _current.get() or Provenance(source=Source.SERVICE_API)


def record(family_id: int, *, action: str, approval: bool, language: str) -> ConsentChange:
    provenance = current_provenance()
    return ConsentChange.objects.create(
        family_id=family_id,
        source=provenance.source,
        action=action,
        approval=approval,
        language=language or "",
        user_id=provenance.user_id,
        phone=provenance.phone,
        text=provenance.text,
        detail=provenance.detail,
    )
