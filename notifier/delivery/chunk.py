"""What a delivery run loads once per chunk, and the outcomes it has decided and not written yet."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, connections, router
from django.utils import timezone

from notifier.config import NotifierConfig
from notifier.delivery import policy, store
from notifier.delivery.lease import LeaseKeeper
from notifier.delivery.outcomes import Attempt, RowOutcome, add_attempts, write_outcomes
from notifier.models import Outbox, ProviderAccount
from notifier.providers import account_provider, seed_provider_accounts
from notifier.providers.base import Provider, ProviderConfigError
from notifier.providers.registry import UnknownProviderError, get_provider
from notifier.settings import get_config, get_settings

logger = logging.getLogger(__name__)

RATE_LIMIT_MAX_WAIT_SECONDS = 5.0
FLUSH_PATIENCE_SECONDS = 30.0
Status = Outbox.Status


def retry_delay(attempt: int) -> timedelta:
    base = get_settings().retry_base_seconds
    return policy.retry_delay(attempt, base, random.random())


@dataclass
class Chunk:
    """What a chunk loads once, and the outcomes it has not written yet.

    Outcomes are written in one UPDATE (and the attempts in one INSERT) at the end of the chunk, and every
    `flush_seconds` on the way. Until then a row that was sent stays `sending` in the database, leased to this
    run, which no other run ever sends: if this process dies before the write, the lease expires and the sweeper
    makes the row `unknown`, never pending.
    """

    owner: str  # the lease token of this delivery run
    config: NotifierConfig
    rules: policy.Rules
    accounts: dict[int, ProviderAccount]  # enabled, in priority order
    providers: dict[int, Provider | ProviderConfigError | UnknownProviderError]
    sms: dict[int, bool]  # account id -> delivers SMS (False: records only)
    refused: dict[int, set[int]]  # outbox id -> accounts that refused it permanently (since its last resend)
    flush_seconds: float
    writes: dict[int, RowOutcome] = field(default_factory=dict)  # outbox id -> how it leaves `sending`
    attempts: list[Attempt] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)
    keeper: LeaseKeeper | None = None
    marks_in_redis: bool = False  # send marks in the admission script (notifier.coordination), else take_turn
    lost: set[int] = field(default_factory=set)  # rows whose lease this run lost before sending them
    started: dict[int, datetime] = field(default_factory=dict)  # outbox id -> when this run's first call began
    in_flight: tuple[int, int] | None = None  # (outbox id, account id) of a call that may have sent the SMS
    skips: Counter[tuple[str, str]] = field(default_factory=Counter)  # (account, reason) -> messages

    def flush(self) -> None:
        """Write the outcomes and attempts noted so far. On failure they are kept for the next try: each write is
        conditional on the row's state (written twice, it changes nothing more)."""
        writes, self.writes = self.writes, {}
        attempts, self.attempts = self.attempts, []
        self.flushed_at = time.monotonic()
        try:
            write_outcomes(writes, self.owner)
        except BaseException:
            self.writes = {**writes, **self.writes}
            self.attempts = attempts + self.attempts
            raise
        try:
            add_attempts(attempts)
        except BaseException:
            self.attempts = attempts + self.attempts
            raise

    def flush_if_due(self) -> None:
        if time.monotonic() - self.flushed_at >= self.flush_seconds:
            self.flush()


def flush_patiently(chunk: Chunk) -> None:
    """The chunk's last write. When the database is away (a restart), try again for a third of the lease, and at
    least FLUSH_PATIENCE_SECONDS: what this run sent should be `sent`, not `unknown`. Late is still right: the write
    applies to rows still ours, and to rows the sweeper made `unknown` meanwhile (a send of ours had started); a
    row it queued again (untried) has lost its owner and is left alone."""
    connection = connections[router.db_for_write(Outbox)]
    patience = max(get_settings().delivery_lease_seconds / 3, FLUSH_PATIENCE_SECONDS)
    deadline = time.monotonic() + patience
    while True:
        try:
            chunk.flush()
            return
        except DatabaseError:
            if connection.in_atomic_block or time.monotonic() > deadline:
                raise
            logger.warning("outbox chunk: could not write its outcomes, trying again", exc_info=True)
            connection.close()
            time.sleep(1.0)


def stall_seconds(chunk: Chunk) -> float:
    """How long one message may take before the lease keeper stops vouching for the run: every account's
    connect and read timeouts plus the rate-limit wait, and a lease's worth of slack."""
    config = chunk.config
    per_call = config.http_connect_timeout_seconds + config.http_read_timeout_seconds + RATE_LIMIT_MAX_WAIT_SECONDS
    return max(1, len(chunk.accounts)) * per_call + get_settings().delivery_lease_seconds


def load_chunk(rows: list[Outbox], owner: str) -> Chunk:
    """Accounts, their providers and the rows' earlier permanent failures: once per chunk."""
    accounts = store.enabled_accounts()
    if not accounts and seed_provider_accounts():
        accounts = store.enabled_accounts()
    providers: dict[int, Provider | ProviderConfigError | UnknownProviderError] = {}
    sms: dict[int, bool] = {}
    for account in accounts:
        try:
            providers[account.pk] = account_provider(account)
        except (ProviderConfigError, UnknownProviderError) as exc:
            providers[account.pk] = exc
        try:
            sms[account.pk] = get_provider(account.provider).delivers_sms
        except UnknownProviderError:
            sms[account.pk] = True
    config = get_config()
    rules = policy.Rules(
        max_attempts=config.max_attempts,
        backoff_base=get_settings().retry_base_seconds,
        cooldown=float(config.circuit_breaker.cooldown_seconds),
    )
    return Chunk(
        owner=owner,
        config=config,
        rules=rules,
        accounts={account.pk: account for account in accounts},
        providers=providers,
        sms=sms,
        refused=store.refused_accounts({row.pk: row.requeued_at for row in rows}),
        flush_seconds=get_settings().delivery_flush_seconds,
    )


def attempt(
    chunk: Chunk,
    row: Outbox,
    account: ProviderAccount,
    outcome: str,
    started_at: datetime,
    clock: float | None = None,
    error: str = "",
    http_status: int | None = None,
) -> None:
    duration = time.monotonic() - clock if clock is not None else 0.0
    chunk.attempts.append(
        Attempt(row.pk, account.pk, account.provider, started_at, round(duration * 1000), outcome, http_status, error)
    )


def finish(
    chunk: Chunk,
    row: Outbox,
    status: str,
    *,
    error: str = "",
    account: int | None = None,
    reference: str = "",
    next_at: datetime | None = None,
    count_attempt: bool = False,
) -> str:
    """Note how a claimed row leaves `sending`; written with the chunk's next flush, which ends its lease."""
    sent = status == Status.SENT
    chunk.writes[row.pk] = RowOutcome(
        status,
        error,
        timezone.now(),
        count_attempt,
        account,
        reference if sent else None,
        next_at,
        chunk.started.get(row.pk),
    )
    return str(status)
