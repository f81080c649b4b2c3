"""Getting one outbox row out exactly once: claim → render → ordered fallback over provider accounts → record.

- Only the worker whose conditional UPDATE (pending → sending) changed the row sends it, under a lease it extends
  while it works and proves again before every provider call (notifier.leases): a slow gateway, a long chunk or
  a paused worker delays messages, never duplicates them.
- Enabled accounts are tried in priority order; an open circuit breaker skips one (counted and logged per chunk,
  no attempt row); the first success wins. A row that no account could even try waits until one can (the breaker's
  cooldown, the rate limit), without spending an attempt.
- A transient failure of every account sends the row back to pending with exponential backoff and jitter, until
  `max_attempts`; then it is failed. A permanent failure moves on and that account is never tried again for this
  row (until an operator resends it). An unknown outcome stops at once: the SMS may have gone out, so the row
  becomes `unknown` and is never resent automatically.
- A provider that only records messages (text files) never stands in for a failed SMS gateway. When an SMS gateway
  account is enabled, recording accounts keep an audit copy of each message a gateway delivered (never of one it
  did not); only when no SMS gateway account is enabled (development) does a recording account deliver itself.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, connections, router
from django.db.models import Field
from django.utils import timezone

from notifier import coordination, leases, quiet
from notifier.conf import get_config
from notifier.config import NotifierConfig
from notifier.leases import claim_chunk
from notifier.models import DeliveryAttempt, Outbox, ProviderAccount
from notifier.phones import recipient_problem
from notifier.providers import account_provider, seed_provider_accounts
from notifier.providers.base import (
    PermanentError,
    Provider,
    ProviderConfigError,
    TransientError,
    UnknownOutcomeError,
    redact,
)
from notifier.providers.registry import UnknownProviderError, get_provider
from notifier.rendering import RenderError, render_outboxes

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 60  # NOTIFIER_RETRY_BASE_SECONDS: the first retry comes after half to all of it
BACKOFF_CAP_SECONDS = 3600
RATE_LIMIT_MAX_WAIT_SECONDS = 5.0
DEFAULT_FLUSH_SECONDS = 2.0  # NOTIFIER_DELIVERY_FLUSH_SECONDS: longest a chunk keeps outcomes before writing them
_WRITE_BATCH = 100
_INCREMENT = object()  # a row write's "attempts + 1"
Status = Outbox.Status
Outcome = DeliveryAttempt.Outcome
SKIPPED = "skipped"  # deliver_chunk's word for a row this run did not (or no longer) own

__all__ = ["claim_chunk", "deliver", "deliver_chunk"]


def _config() -> NotifierConfig:
    return get_config()


def _backoff_base() -> float:
    value = getattr(settings, "NOTIFIER_RETRY_BASE_SECONDS", BACKOFF_BASE_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"NOTIFIER_RETRY_BASE_SECONDS: expected a positive number of seconds, got {value!r}")
    return float(value)


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt - 1), capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, _backoff_base() * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def outbox_reference(outbox_id: int) -> str:
    """Stable across retries, so a provider (or a file name) can recognise the same message."""
    return f"outbox-{outbox_id}"


def due_outbox_ids(limit: int, now: datetime | None = None) -> list[int]:
    """Pending rows whose next attempt is due, oldest due first (for the sweeper)."""
    now = now or timezone.now()
    due = Outbox.objects.filter(status=Status.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at", "id")
    return list(due.values_list("id", flat=True)[:limit])


@dataclass
class _Round:
    """What happened to one message in one delivery run."""

    outbox: Outbox
    text: str = ""
    language: str = ""
    called: int = 0
    transient: bool = False
    skipped: bool = False
    wait: float | None = None  # when no account could be tried: seconds until the soonest one may be
    in_flight: ProviderAccount | None = None
    last_account: ProviderAccount | None = None  # the last account actually called, shown as the row's provider
    errors: list[str] = field(default_factory=list)
    recorders: list[ProviderAccount] = field(default_factory=list)  # audit copies after a gateway delivered

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else ""


@dataclass
class _Chunk:
    """What a chunk loads once, and the outcomes it has not written yet.

    Outcomes are written in one UPDATE (and the attempts in one INSERT) at the end of the chunk, and every
    `flush_seconds` on the way. Until then a row that was sent stays `sending` in the database, leased to this
    run, which no other run ever sends: if this process dies before the write, the lease expires and the sweeper
    makes the row `unknown`, never pending.
    """

    owner: str  # the lease token of this delivery run
    config: NotifierConfig
    accounts: list[ProviderAccount]  # enabled, in priority order
    providers: dict[int, Provider | ProviderConfigError | UnknownProviderError]
    sms: dict[int, bool]  # account id -> delivers SMS (False: records only)
    refused: dict[int, set[int]]  # outbox id -> accounts that refused it permanently (since its last resend)
    flush_seconds: float
    writes: dict[int, dict[str, Any]] = field(default_factory=dict)  # outbox id -> final values
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)
    keeper: leases.LeaseKeeper | None = None
    lost: set[int] = field(default_factory=set)  # rows whose lease this run lost before sending them
    skips: Counter[tuple[str, str]] = field(default_factory=Counter)  # (account, reason) -> messages

    def flush(self) -> None:
        writes, self.writes = self.writes, {}
        attempts, self.attempts = self.attempts, []
        self.flushed_at = time.monotonic()
        _write_rows(writes, self.owner)
        if attempts:
            DeliveryAttempt.objects.bulk_create(attempts)

    def flush_if_due(self) -> None:
        if time.monotonic() - self.flushed_at >= self.flush_seconds:
            self.flush()


def deliver(outbox_id: int) -> str:
    """Send one outbox row. Returns "sent", "pending" (retry scheduled), "failed", "unknown" or "skipped"."""
    return deliver_chunk([outbox_id])[int(outbox_id)]


def deliver_chunk(outbox_ids: Sequence[int]) -> dict[int, str]:
    """Send these outbox rows, one after the other, with the work common to them done once.

    Returns each id's final status like `deliver`: "skipped" for a row that was not claimed (not pending, not
    due, or claimed by another worker). Statements per chunk do not depend on its size: claim, rows with policy,
    product, family and head, templates, accounts, earlier permanent failures, outcomes, attempts.
    """
    ids = list(dict.fromkeys(int(outbox_id) for outbox_id in outbox_ids))
    statuses = dict.fromkeys(ids, SKIPPED)
    owner = leases.new_owner()
    claimed = set(claim_chunk(ids, timezone.now(), owner))
    if not claimed:
        return statuses
    position = {outbox_id: index for index, outbox_id in enumerate(ids)}
    rows = sorted(
        Outbox.objects.filter(pk__in=claimed).select_related("policy__product", "family__head_insuree"),
        key=lambda row: position[row.pk],
    )
    chunk: _Chunk | None = None
    current: _Round | None = None
    try:
        chunk = _load_chunk(rows, owner)
        chunk.keeper = leases.LeaseKeeper(owner, [row.pk for row in rows], _stall_seconds(chunk)).start()
        # A row goes out in the words of the day it is sent: one rendered on its event date and held (quiet hours,
        # retries) is rendered again once that day has passed, so it never says "today" a day late.
        today = timezone.localdate()
        rendered = render_outboxes([row for row in rows if not row.text or row.event_date < today], today)
        # Kept before anything is sent, so every retry (and an operator looking at an unknown outcome after a
        # killed worker) sees the words that may have gone out.
        _write_rows(
            {
                outbox_id: {"text": message.text, "encoding": message.encoding, "segments": message.segments}
                for outbox_id, message in rendered.items()
                if not isinstance(message, RenderError)
            },
            owner,
        )
        for row in rows:
            chunk.keeper.progress()
            current = _Round(outbox=row, text=row.text, language=row.language)
            message = rendered.get(row.pk)
            refused = recipient_problem(row.recipient)  # a row not written by detection may hold anything
            if refused or isinstance(message, RenderError):
                _finish(chunk, current, Status.FAILED, error=refused or f"cannot render: {message}")
                statuses[row.pk] = str(Status.FAILED)
            else:
                if message is not None:
                    current.text, current.language = message.text, message.language
                statuses[row.pk] = str(_send(chunk, current))
                logger.debug("outbox %s %s after %s call(s)", row.pk, statuses[row.pk], current.called)
            current = None
            chunk.flush_if_due()
    except BaseException:
        # Never leave a claimed row in `sending` when we know better: if a provider call may have gone out its
        # outcome is unknown, otherwise the row goes back to pending for a later try.
        logger.exception("delivery of outbox chunk %s crashed", ids[:3] + (["…"] if len(ids) > 3 else []))
        if chunk is None:
            _release(rows, owner)
        else:
            for row in rows:
                if row.pk in chunk.writes or row.pk in chunk.lost or statuses[row.pk] != SKIPPED:
                    continue
                if current is not None and current.outbox is row and current.in_flight is not None:
                    error = "delivery crashed during a provider call"
                    _finish(chunk, current, Status.UNKNOWN, error=error, account=current.in_flight)
                else:
                    retry_at = timezone.now() + retry_delay(1)
                    _finish(
                        chunk,
                        _Round(outbox=row),
                        Status.PENDING,
                        error="delivery crashed before sending",
                        next_at=retry_at,
                    )
        raise
    finally:
        if chunk is not None:
            try:
                _flush_patiently(chunk)
            finally:
                if chunk.keeper is not None:
                    chunk.keeper.stop()
    for (account, reason), count in sorted(chunk.skips.items() if chunk is not None else []):
        logger.info("outbox chunk: account %s skipped for %s message(s): %s", account, count, reason)
    logger.info("outbox chunk of %s: %s", len(ids), dict(Counter(statuses.values())))
    return statuses


def _release(rows: list[Outbox], owner: str) -> None:
    """Claimed rows of a chunk that failed before anything was tried: back to pending, due after a backoff."""
    now = timezone.now()
    Outbox.objects.filter(pk__in=[row.pk for row in rows], status=Status.SENDING, lease_owner=owner).update(
        status=Status.PENDING,
        lease_owner="",
        lease_expires_at=None,
        last_error="delivery crashed before sending",
        next_attempt_at=now + retry_delay(1),
        updated_at=now,
    )


def _flush_patiently(chunk: _Chunk) -> None:
    """The chunk's last write. When the database is briefly away (a restart), try again for a third of the lease
    (the rows are still ours meanwhile): what this run sent should be `sent`, not `unknown` by the sweeper."""
    connection = connections[router.db_for_write(Outbox)]
    deadline = time.monotonic() + leases.lease_seconds() / 3
    writes, attempts = dict(chunk.writes), list(chunk.attempts)
    while True:
        try:
            chunk.flush()
            return
        except DatabaseError:
            if connection.in_atomic_block or time.monotonic() > deadline:
                raise
            logger.warning("outbox chunk: could not write its outcomes, trying again", exc_info=True)
            connection.close()
            chunk.writes, chunk.attempts = dict(writes), list(attempts)
            time.sleep(1.0)


def _stall_seconds(chunk: _Chunk) -> float:
    """How long one message may take before the lease keeper stops vouching for the run: every account's
    connect and read timeouts plus the rate-limit wait, and a lease's worth of slack."""
    config = chunk.config
    per_call = config.http_connect_timeout_seconds + config.http_read_timeout_seconds + RATE_LIMIT_MAX_WAIT_SECONDS
    return max(1, len(chunk.accounts)) * per_call + leases.lease_seconds()


def _flush_seconds() -> float:
    value = getattr(settings, "NOTIFIER_DELIVERY_FLUSH_SECONDS", DEFAULT_FLUSH_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"NOTIFIER_DELIVERY_FLUSH_SECONDS: expected a positive number, got {value!r}")
    return float(value)


def _load_chunk(rows: list[Outbox], owner: str) -> _Chunk:
    """Accounts, their providers and the rows' earlier permanent failures: once per chunk."""
    accounts = list(ProviderAccount.objects.filter(enabled=True).order_by("priority", "id"))
    if not accounts and seed_provider_accounts():
        accounts = list(ProviderAccount.objects.filter(enabled=True).order_by("priority", "id"))
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
    requeued = {row.pk: row.requeued_at for row in rows}
    refused: dict[int, set[int]] = {}
    permanent = DeliveryAttempt.objects.filter(outbox_id__in=list(requeued), outcome=Outcome.PERMANENT)
    for outbox_id, account_id, started_at in permanent.values_list("outbox_id", "provider_account_id", "started_at"):
        since = requeued[outbox_id]
        if account_id is not None and (since is None or started_at >= since):
            refused.setdefault(outbox_id, set()).add(account_id)
    return _Chunk(
        owner=owner,
        config=_config(),
        accounts=accounts,
        providers=providers,
        sms=sms,
        refused=refused,
        flush_seconds=_flush_seconds(),
    )


def _accounts(chunk: _Chunk, outbox: Outbox) -> tuple[list[ProviderAccount], list[ProviderAccount]]:
    """Enabled accounts in priority order, minus those that already failed permanently for this row.

    The second list holds the recording accounts that keep audit copies when SMS gateways do the delivering.
    """
    refused = chunk.refused.get(outbox.pk, set())
    usable = [account for account in chunk.accounts if account.pk not in refused]
    recorders: list[ProviderAccount] = []
    if any(chunk.sms[account.pk] for account in usable):
        recorders = [account for account in chunk.accounts if not chunk.sms[account.pk]]
        usable = [account for account in usable if chunk.sms[account.pk]]
    return usable, recorders


def _attempt(
    chunk: _Chunk,
    round_: _Round,
    account: ProviderAccount,
    outcome: str,
    *,
    started_at: datetime,
    duration: float = 0.0,
    error: str = "",
    http_status: int | None = None,
    secrets: list[str] | None = None,
) -> None:
    error = redact(error, secrets or [])
    chunk.attempts.append(
        DeliveryAttempt(
            outbox=round_.outbox,
            provider_account=account,
            provider=account.provider,
            started_at=started_at,
            duration_ms=round(duration * 1000),
            outcome=outcome,
            http_status=http_status,
            error=error,
        )
    )
    if error:
        round_.errors.append(f"{account.name}: {error}")


def _send(chunk: _Chunk, round_: _Round) -> str:
    config = chunk.config
    if _held_by_quiet_hours(chunk, round_):
        return Status.PENDING
    accounts, round_.recorders = _accounts(chunk, round_.outbox)
    if not accounts and chunk.accounts:
        error = "every enabled provider account refused this message permanently"
        _finish(chunk, round_, Status.FAILED, error=error)
        return Status.FAILED
    if not accounts:
        return _after_failures(chunk, round_, config, no_accounts=True)
    for account in accounts:
        started_at = timezone.now()
        provider = chunk.providers[account.pk]
        if not isinstance(provider, Provider):
            _attempt(
                chunk, round_, account, Outcome.PERMANENT, started_at=started_at, error=f"invalid account: {provider}"
            )
            continue
        rate = account.rate_limit_per_second or config.rate_limit_per_second
        # Breaker and rate slot in one Redis round trip.
        admission = coordination.admit(
            account.pk, rate, RATE_LIMIT_MAX_WAIT_SECONDS, cooldown=float(config.circuit_breaker.cooldown_seconds)
        )
        if not admission.ok:
            reason = "circuit breaker open" if admission.reason == "breaker" else f"rate limit ({rate}/s) saturated"
            _skip(chunk, round_, account, reason, admission.wait)
            continue
        status = _try(chunk, round_, account, provider, probe=admission.probe)
        if status is not None:
            return status
    return _after_failures(chunk, round_, config)


def _skip(chunk: _Chunk, round_: _Round, account: ProviderAccount, reason: str, wait: float) -> None:
    """An account that cannot be tried now: no attempt row (one per message would flood the log while a breaker is
    open), a count per chunk, and the row waits at most until the soonest skipped account may be tried."""
    round_.skipped = True
    round_.wait = wait if round_.wait is None else min(round_.wait, wait)
    round_.errors.append(f"{account.name}: {reason}")
    chunk.skips[(account.name, reason)] += 1


def _held_by_quiet_hours(chunk: _Chunk, round_: _Round) -> bool:
    """Quiet hours (notifier.quiet): a row claimed inside them goes back to pending, due at its own minute after
    they end; no provider is called and no attempt counted."""
    wait_until = quiet.next_send_time(
        timezone.now(), chunk.config.quiet_hours, ZoneInfo(settings.TIME_ZONE), round_.outbox.pk
    )
    if wait_until is None:
        return False
    local = timezone.localtime(wait_until, ZoneInfo(settings.TIME_ZONE))
    _finish(chunk, round_, Status.PENDING, error=f"quiet hours: waits until {local:%Y-%m-%d %H:%M}", next_at=wait_until)
    return True


def _try(
    chunk: _Chunk, round_: _Round, account: ProviderAccount, provider: Provider, *, probe: bool = True
) -> str | None:
    """One provider call. Returns the row's final status when this call decided it, else None (try the next).

    `probe`: this call is the breaker's half-open probe, whose success closes it. A call admitted while the
    breaker was closed has nothing to report on success (failures in the window keep counting), so it costs no
    Redis round trip."""
    outbox = round_.outbox
    secrets = provider.secret_values()
    if not leases.take_turn(outbox.pk, chunk.owner):
        # The lease lapsed (this process was paused or the database unreachable for longer than the lease) and
        # the sweeper took the row back: it is someone else's now, or `unknown` if a call of ours had started.
        logger.warning("outbox %s: lease lost before sending; left to the sweeper", outbox.pk)
        chunk.lost.add(outbox.pk)
        return SKIPPED
    if chunk.keeper is not None:
        chunk.keeper.progress()
    started_at = timezone.now()
    clock = time.monotonic()
    round_.in_flight = round_.last_account = account
    round_.called += 1
    try:
        reference = provider.send(
            outbox.recipient,
            round_.text,
            outbox_reference(outbox.pk),
            metadata={"language": round_.language, "notification_type": outbox.notification_type},
        )
    except (TransientError, PermanentError) as exc:
        round_.in_flight = None
        transient = isinstance(exc, TransientError)
        if transient:
            round_.transient = True
            coordination.record_failure(account.pk)
        _attempt(
            chunk,
            round_,
            account,
            Outcome.TRANSIENT if transient else Outcome.PERMANENT,
            started_at=started_at,
            duration=time.monotonic() - clock,
            error=exc.message,
            http_status=exc.http_status,
            secrets=secrets,
        )
        return None
    except Exception as exc:
        # UnknownOutcomeError, or a provider bug after which nobody can say whether the SMS left.
        # The row's outcome is noted first: whatever fails afterwards must not make it look unsent.
        duration = time.monotonic() - clock
        message = exc.message if isinstance(exc, UnknownOutcomeError) else f"{type(exc).__name__}: {exc}"
        message = redact(message, secrets)
        http_status = exc.http_status if isinstance(exc, UnknownOutcomeError) else None
        _finish(chunk, round_, Status.UNKNOWN, error=f"{account.name}: {message}", account=account, count_attempt=True)
        round_.in_flight = None
        _attempt(
            chunk,
            round_,
            account,
            Outcome.UNKNOWN,
            started_at=started_at,
            duration=duration,
            error=message,
            http_status=http_status,
        )
        coordination.record_failure(account.pk)
        return Status.UNKNOWN
    duration = time.monotonic() - clock
    _finish(chunk, round_, Status.SENT, account=account, reference=reference[:200], count_attempt=True)
    round_.in_flight = None
    _attempt(chunk, round_, account, Outcome.SUCCESS, started_at=started_at, duration=duration)
    if probe:
        coordination.record_success(account.pk)
    _record_copies(chunk, round_, account)
    return Status.SENT


def _record_copies(chunk: _Chunk, round_: _Round, delivered_by: ProviderAccount) -> None:
    """Audit copies of a message an SMS gateway delivered. They are no delivery attempts (a file is not an SMS),
    and a copy that cannot be written is logged without touching the delivered row."""
    outbox = round_.outbox
    for account in round_.recorders:
        try:
            provider = chunk.providers[account.pk]
            if not isinstance(provider, Provider):
                raise provider
            provider.send(
                outbox.recipient,
                round_.text,
                outbox_reference(outbox.pk),
                metadata={
                    "language": round_.language,
                    "notification_type": outbox.notification_type,
                    "delivered_by": delivered_by.name,
                },
            )
        except Exception as exc:
            logger.warning("audit copy of outbox %s in account %s failed: %s", outbox.pk, account.pk, exc)


def _after_failures(chunk: _Chunk, round_: _Round, config: NotifierConfig, *, no_accounts: bool = False) -> str:
    outbox = round_.outbox
    now = timezone.now()
    if no_accounts:
        round_.errors.append("no enabled provider account left to try")
    elif not round_.transient and not round_.skipped:
        # Every account failed permanently (or is misconfigured): nothing will change by waiting.
        _finish(
            chunk,
            round_,
            Status.FAILED,
            error=round_.last_error,
            account=round_.last_account,
            count_attempt=round_.called > 0,
        )
        return Status.FAILED
    if not no_accounts and round_.called == 0:
        # Only breakers and rate limits stood in the way: not an attempt. Due again when the soonest skipped
        # account may be tried (its cooldown's end), spread over a second or two so that they do not all collide.
        wait = round_.wait if round_.wait is not None else config.circuit_breaker.cooldown_seconds
        next_at = now + timedelta(seconds=wait + random.uniform(0, min(2.0, wait / 4)))
        _finish(chunk, round_, Status.PENDING, error=round_.last_error, next_at=next_at)
        return Status.PENDING
    attempts = outbox.attempts + 1
    if attempts >= config.max_attempts:
        error = f"gave up after {attempts} attempts; last: {round_.last_error}"
        _finish(chunk, round_, Status.FAILED, error=error, account=round_.last_account, count_attempt=True)
        return Status.FAILED
    _finish(
        chunk,
        round_,
        Status.PENDING,
        error=round_.last_error,
        account=round_.last_account,
        next_at=now + retry_delay(attempts),
        count_attempt=True,
    )
    return Status.PENDING


def _finish(
    chunk: _Chunk,
    round_: _Round,
    status: str,
    *,
    error: str = "",
    account: ProviderAccount | None = None,
    reference: str = "",
    next_at: datetime | None = None,
    count_attempt: bool = False,
) -> None:
    """Note how a claimed row leaves `sending`; written with the chunk's next flush, which ends its lease."""
    now = timezone.now()
    values: dict[str, Any] = {"status": status, "last_error": error[:2000], "updated_at": now}
    values["lease_expires_at"] = None
    if status == Status.PENDING:
        values["lease_owner"] = ""
    if count_attempt:
        values["attempts"] = _INCREMENT
    if account is not None:
        values["provider_account"] = account.pk
    if status == Status.SENT:
        values["provider_reference"] = reference
        values["sent_at"] = now
    if next_at is not None:
        values["next_attempt_at"] = next_at
    chunk.writes[round_.outbox.pk] = values


def _write_rows(writes: dict[int, dict[str, Any]], owner: str) -> None:
    """One UPDATE per 100 rows, each column a CASE over the row ids; only rows still ours change: leased to `owner`
    and `sending`, or `unknown` because the sweeper gave up on us while a call was in flight (its real outcome is
    better than a guess; a row taken back untried has lost its owner and is left alone).

    Written as SQL rather than with Case/When: resolving ~10 ORM expressions per row cost more CPU than the
    delivery itself (profile: ~1.5 ms per message).
    """
    if not writes:
        return
    connection = connections[router.db_for_write(Outbox)]
    quote = connection.ops.quote_name
    table, id_column = quote(Outbox._meta.db_table), quote(Outbox._meta.pk.column)
    status_column = quote(Outbox._meta.get_field("status").column)
    owner_column = quote(Outbox._meta.get_field("lease_owner").column)
    items = list(writes.items())
    for start in range(0, len(items), _WRITE_BATCH):
        part = items[start : start + _WRITE_BATCH]
        assignments: list[str] = []
        params: list[Any] = []
        for name in sorted({name for _outbox_id, values in part for name in values}):
            model_field = Outbox._meta.get_field(name)
            assert isinstance(model_field, Field)
            column = quote(model_field.column)
            # PostgreSQL types CASE branches from their parameters: say what each one is.
            placeholder = (
                f"CAST(%s AS {model_field.db_type(connection)})" if connection.vendor == "postgresql" else "%s"
            )
            branches: list[str] = []
            for outbox_id, values in part:
                if name not in values:
                    continue
                if values[name] is _INCREMENT:
                    branches.append(f"WHEN %s THEN {column} + 1")
                    params.append(outbox_id)
                else:
                    branches.append(f"WHEN %s THEN {placeholder}")
                    params += [outbox_id, model_field.get_db_prep_save(values[name], connection)]
            assignments.append(f"{column} = CASE {id_column} {' '.join(branches)} ELSE {column} END")
        ids = [outbox_id for outbox_id, _values in part]
        sql = (
            f"UPDATE {table} SET {', '.join(assignments)} "  # noqa: S608 (names from the model, values as parameters)
            f"WHERE {id_column} IN ({', '.join(['%s'] * len(ids))}) AND {owner_column} = %s "
            f"AND {status_column} IN (%s, %s)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, *ids, owner, Status.SENDING.value, Status.UNKNOWN.value])


@dataclass(frozen=True)
class TrialOutcome:
    ok: bool
    message: str


def send_test_message(account: ProviderAccount, recipient: str, text: str) -> TrialOutcome:
    """The admin's "send test message": one real send through `account`, outside the outbox, errors redacted."""
    try:
        provider = account_provider(account)
    except (ProviderConfigError, UnknownProviderError) as exc:
        return TrialOutcome(False, f"{account.name}: invalid account: {exc}")
    reference = f"test-{account.pk}-{timezone.now():%Y%m%d%H%M%S}"
    try:
        provider_reference = provider.send(recipient, text, reference, metadata={"notification_type": "test"})
    except (TransientError, PermanentError, UnknownOutcomeError) as exc:
        from notifier.humanize import FAILURE_WORDS, plain_excerpt

        kind = FAILURE_WORDS.get(type(exc).__name__, "failure")
        error = plain_excerpt(redact(exc.message, provider.secret_values()), 300)
        return TrialOutcome(False, f"{account.name}: {kind}: {error}")
    return TrialOutcome(True, f"{account.name}: sent to {recipient} (reference {provider_reference})")


# --- operator actions and the sweeper's helpers ------------------------------------------------------------


def resend(outbox_ids: list[int]) -> int:
    """Queue failed, unknown or cancelled rows again, as new: attempts reset, earlier permanent failures forgotten."""
    now = timezone.now()
    return Outbox.objects.filter(
        pk__in=outbox_ids, status__in=[Status.FAILED, Status.UNKNOWN, Status.CANCELLED]
    ).update(
        status=Status.PENDING,
        attempts=0,
        next_attempt_at=now,
        requeued_at=now,
        last_error="",
        lease_owner="",
        lease_expires_at=None,
        enqueued_at=None,
        updated_at=now,
    )


def cancel(outbox_ids: list[int]) -> int:
    """Cancel rows that are not sent and not being sent right now."""
    return Outbox.objects.filter(pk__in=outbox_ids, status__in=[Status.PENDING, Status.FAILED, Status.UNKNOWN]).update(
        status=Status.CANCELLED, updated_at=timezone.now()
    )
