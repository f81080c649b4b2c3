"""What the delivery test files share: the sweeper as they call it, a file account, and an outbox row's attempt log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import redis
from django.conf import settings

from notifier import coordination
from notifier.delivery.store import MARKS_IN_REDIS, hand_out_due
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


def marks_key(owner: str) -> str:
    """The Redis hash of a delivery run's send marks (notifier.coordination)."""
    return f"{coordination.KEY_PREFIX}marks:{owner}"


def started_sending() -> list[Outbox]:
    """Rows `sending` whose send has started: marked in the database, or in the Redis marks of their run."""
    rows = list(Outbox.objects.filter(status=Outbox.Status.SENDING))
    client = redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    found = []
    for row in rows:
        in_redis = (
            client is not None
            and row.lease_owner.startswith(MARKS_IN_REDIS)
            and client.hexists(marks_key(row.lease_owner), str(row.pk))
        )
        if row.send_started_at is not None or in_redis:
            found.append(row)
    return found
