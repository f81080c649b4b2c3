"""What the delivery test files share: the sweeper as they call it, a file account, and an outbox row's attempt log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from notifier.delivery.store import hand_out_due
from notifier.models import DeliveryAttempt, Outbox, ProviderAccount

Outcome = DeliveryAttempt.Outcome
T0 = dt.datetime(2026, 11, 28, 7, 0, tzinfo=dt.UTC)
SWEEP_GRACE = dt.timedelta(seconds=600)  # NOTIFIER_SWEEP_GRACE_SECONDS


def swept(now: dt.datetime | None = None) -> list[int]:
    """What the sweeper hands out now (and marks as handed out): due pending rows that no delivery task carries."""
    return hand_out_due(100, SWEEP_GRACE, now)


def text_account(folder: Path, priority: int) -> ProviderAccount:
    return ProviderAccount.objects.create(
        name="files",
        provider="TextNotificationProvider",
        priority=priority,
        config={"DestinationFolder": str(folder)},
    )


def attempts(outbox: Outbox) -> list[tuple[str, str, int | None]]:
    return [
        (a.provider_account.name if a.provider_account else "", a.outcome, a.http_status)
        for a in DeliveryAttempt.objects.filter(outbox=outbox).select_related("provider_account")
    ]
