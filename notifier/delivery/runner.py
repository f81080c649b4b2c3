"""A chunk of outbox rows through the provider accounts: claim → render → ordered fallback → record.

- Only the run whose claim (pending → sending) took a row sends it, under a lease it proves again before every
  provider call (notifier.delivery.store): a slow gateway, a long chunk or a paused worker delays messages, never
  duplicates them.
- Enabled accounts are tried in priority order, an open breaker or a saturated rate limit skips one (counted and
  logged per chunk, no attempt row), the first success wins; what follows each account's turn is
  notifier.delivery.policy's to say.
- A provider that only records messages (text files) never stands in for a failed SMS gateway: while an SMS gateway
  account is enabled, recording accounts keep an audit copy of each message a gateway delivered.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import redis
from django.conf import settings
from django.utils import timezone

from notifier import coordination, quiet
from notifier.delivery import policy, store
from notifier.delivery.chunk import (
    RATE_LIMIT_MAX_WAIT_SECONDS,
    Chunk,
    attempt,
    finish,
    flush_patiently,
    load_chunk,
    retry_delay,
    stall_seconds,
)
from notifier.delivery.lease import LeaseKeeper
from notifier.delivery.outcomes import write_texts
from notifier.delivery.policy import Result, Step, Turn
from notifier.models import DeliveryAttempt, Outbox, ProviderAccount
from notifier.phones import recipient_problem
from notifier.providers.base import PermanentError, Provider, TransientError, UnknownOutcomeError, redact
from notifier.rendering import RenderError, render_outboxes

logger = logging.getLogger(__name__)

Status = Outbox.Status
Outcome = DeliveryAttempt.Outcome
SKIPPED = "skipped"  # deliver_chunk's word for a row this run did not (or no longer) own
_STATUS = {Step.SENT: Status.SENT, Step.UNKNOWN: Status.UNKNOWN, Step.FAIL: Status.FAILED}
_OUTCOME = {
    Result.SUCCESS: Outcome.SUCCESS,
    Result.TRANSIENT: Outcome.TRANSIENT,
    Result.PERMANENT: Outcome.PERMANENT,
    Result.INVALID: Outcome.PERMANENT,
    Result.UNKNOWN: Outcome.UNKNOWN,
}


def outbox_reference(outbox_id: int) -> str:
    """Stable across retries, so a provider (or a file name) can recognise the same message."""
    return f"outbox-{outbox_id}"


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
    marks_in_redis, owner = _open_run()
    claimed = set(store.claim_chunk(ids, timezone.now(), owner))
    if not claimed:
        _close_run(owner, marks_in_redis)
        return statuses
    rows = store.claimed_rows([outbox_id for outbox_id in ids if outbox_id in claimed])
    chunk: Chunk | None = None
    try:
        chunk = load_chunk(rows, owner)
        chunk.marks_in_redis = marks_in_redis
        chunk.keeper = LeaseKeeper(owner, [row.pk for row in rows], stall_seconds(chunk)).start()
        _deliver_rows(chunk, rows, statuses)
    except BaseException:
        # Never leave a claimed row in `sending` when we know better: if a provider call may have gone out its
        # outcome is unknown, otherwise the row goes back to pending for a later try.
        logger.exception("delivery of outbox chunk %s crashed", ids[:3] + (["…"] if len(ids) > 3 else []))
        if chunk is None:
            store.release([row.pk for row in rows], owner, timezone.now() + retry_delay(1), _CRASHED_BEFORE)
        else:
            _note_crash(chunk, rows, statuses)
        raise
    finally:
        if chunk is not None:
            try:
                flush_patiently(chunk)
            finally:
                if chunk.keeper is not None:
                    chunk.keeper.stop()
    # Every outcome is written: the marks have done their work, unless rows were lost to the sweeper's fence (it
    # reads the marks again until it has taken them back).
    _close_run(owner, marks_in_redis and not chunk.lost)
    for (account, reason), count in sorted(chunk.skips.items()):
        logger.info("outbox chunk: account %s skipped for %s message(s): %s", account, count, reason)
    logger.info("outbox chunk of %s: %s", len(ids), dict(Counter(statuses.values())))
    return statuses


_CRASHED_BEFORE = "delivery crashed before sending"


def _open_run() -> tuple[bool, str]:
    """The run's owner token and where it keeps its send marks. In Redis, they are opened before the claim, so that
    the sweeper finds the marks of every run it may fence; a Redis out of reach leaves them to the database (the
    run's admissions will tell whether Redis is back)."""
    if coordination.marks_in_redis():
        owner = store.new_owner(marks_in_redis=True)
        try:
            coordination.open_run(owner)
            return True, owner
        except redis.RedisError as exc:
            logger.warning("outbox chunk: Redis out of reach (%s); send marks in the database", exc)
    return False, store.new_owner()


def _close_run(owner: str, marks_in_redis: bool) -> None:
    if not marks_in_redis:
        return
    try:
        coordination.close_run(owner)
    except redis.RedisError as exc:  # they expire on their own
        logger.warning("outbox chunk: could not remove the send marks of run %s: %s", owner, exc)


def _deliver_rows(chunk: Chunk, rows: list[Outbox], statuses: dict[int, str]) -> None:
    # A row goes out in the words of the day it is sent: one rendered on its event date and held (quiet hours,
    # retries) is rendered again once that day has passed, so it never says "today" a day late.
    today = timezone.localdate()
    rendered = render_outboxes([row for row in rows if not row.text or row.event_date < today], today)
    # Kept before anything is sent, so every retry (and an operator looking at an unknown outcome after a killed
    # worker) sees the words that may have gone out.
    texts = {
        outbox_id: (message.text, message.encoding, message.segments)
        for outbox_id, message in rendered.items()
        if not isinstance(message, RenderError)
    }
    write_texts(texts, chunk.owner)
    for row in rows:
        assert chunk.keeper is not None
        chunk.keeper.progress()
        message = rendered.get(row.pk)
        refused = recipient_problem(row.recipient)  # a row not written by detection may hold anything
        if refused or isinstance(message, RenderError):
            statuses[row.pk] = finish(chunk, row, Status.FAILED, error=refused or f"cannot render: {message}")
        else:
            text, language = (message.text, message.language) if message is not None else (row.text, row.language)
            statuses[row.pk] = _send(chunk, row, text, language)
            logger.debug("outbox %s %s", row.pk, statuses[row.pk])
        chunk.flush_if_due()


def _note_crash(chunk: Chunk, rows: list[Outbox], statuses: dict[int, str]) -> None:
    for row in rows:
        if row.pk in chunk.writes or row.pk in chunk.lost or statuses[row.pk] != SKIPPED:
            continue
        if chunk.in_flight is not None and chunk.in_flight[0] == row.pk:
            error = "delivery crashed during a provider call"
            finish(chunk, row, Status.UNKNOWN, error=error, account=chunk.in_flight[1])
        else:
            finish(chunk, row, Status.PENDING, error=_CRASHED_BEFORE, next_at=timezone.now() + retry_delay(1))


def _send(chunk: Chunk, row: Outbox, text: str, language: str) -> str:
    """One message through the usable accounts, in order, until policy says it is decided."""
    if _held_by_quiet_hours(chunk, row):
        return str(Status.PENDING)
    usable, recorders = policy.usable_accounts(list(chunk.accounts), chunk.refused.get(row.pk, set()), chunk.sms)
    message = policy.Message(attempts=row.attempts)
    decision = policy.before_accounts(
        message,
        enabled=len(chunk.accounts),
        usable=len(usable),
        now=timezone.now(),
        rules=chunk.rules,
        jitter=random.random(),
    )
    for index, account_id in enumerate(usable if decision is None else []):
        account = chunk.accounts[account_id]
        turn, probe = _turn(chunk, row, account, text, language)
        if turn is None:
            return SKIPPED
        last = index == len(usable) - 1
        decision = policy.after(message, turn, last=last, now=timezone.now(), rules=chunk.rules, jitter=random.random())
        if decision.step is not Step.FALL_BACK:
            status = _decided(chunk, row, decision, turn)
            chunk.in_flight = None
            if turn.result is Result.SUCCESS:
                if probe:
                    coordination.record_success(account.pk)
                _record_copies(chunk, row, text, language, account, recorders)
            elif turn.result is Result.UNKNOWN:
                coordination.record_failure(account.pk)
            return status
        message = decision.message
    assert decision is not None
    return _decided(chunk, row, decision, None)


def _decided(chunk: Chunk, row: Outbox, decision: policy.Decision, turn: Turn | None) -> str:
    status = _STATUS.get(decision.step, Status.PENDING)
    reference = turn.reference[:200] if turn is not None and decision.step is Step.SENT else ""
    return finish(
        chunk,
        row,
        status,
        error=decision.error,
        account=decision.account,
        reference=reference,
        next_at=decision.at,
        count_attempt=decision.counts_attempt,
    )


def _held_by_quiet_hours(chunk: Chunk, row: Outbox) -> bool:
    """Quiet hours (notifier.quiet): a row claimed inside them goes back to pending, due at its own minute after
    they end; no provider is called and no attempt counted."""
    zone = ZoneInfo(settings.TIME_ZONE)
    wait_until = quiet.next_send_time(timezone.now(), chunk.config.quiet_hours, zone, row.pk)
    if wait_until is None:
        return False
    local = timezone.localtime(wait_until, zone)
    finish(chunk, row, Status.PENDING, error=f"quiet hours: waits until {local:%Y-%m-%d %H:%M}", next_at=wait_until)
    return True


def _turn(chunk: Chunk, row: Outbox, account: ProviderAccount, text: str, language: str) -> tuple[Turn | None, bool]:
    """One account's turn: skipped (breaker, rate limit), invalid, or one provider call after the ownership proof.
    Returns (None, False) when the row is no longer ours, and whether the call was the breaker's half-open probe
    (whose success closes it: a call admitted while the breaker was closed reports nothing on success)."""
    started_at = timezone.now()
    provider = chunk.providers[account.pk]
    if not isinstance(provider, Provider):
        error = f"invalid account: {provider}"
        attempt(chunk, row, account, Outcome.PERMANENT, started_at=started_at, error=error)
        return Turn(account.pk, account.name, Result.INVALID, error), False
    rate = account.rate_limit_per_second or chunk.config.rate_limit_per_second
    # Breaker and rate slot in one Redis round trip, which also marks the send as started when the run keeps its
    # marks there.
    admission = _admit(chunk, row, account, rate)
    if admission.reason in ("fenced", "gone"):
        return _lost(chunk, row)
    if not admission.ok:
        reason = "circuit breaker open" if admission.reason == "breaker" else f"rate limit ({rate}/s) saturated"
        chunk.skips[(account.name, reason)] += 1
        return Turn(account.pk, account.name, Result.SKIPPED, reason, wait=admission.wait), False
    secrets = provider.secret_values()
    if not chunk.marks_in_redis and not store.take_turn(row.pk, chunk.owner):
        return _lost(chunk, row)
    assert chunk.keeper is not None
    chunk.keeper.progress()
    started_at = timezone.now()
    chunk.started.setdefault(row.pk, started_at)
    clock = time.monotonic()
    chunk.in_flight = (row.pk, account.pk)
    metadata = {"language": language, "notification_type": row.notification_type}
    try:
        reference = provider.send(row.recipient, text, outbox_reference(row.pk), metadata=metadata)
    except (TransientError, PermanentError) as exc:
        chunk.in_flight = None
        transient = isinstance(exc, TransientError)
        if transient:
            coordination.record_failure(account.pk)
        result = Result.TRANSIENT if transient else Result.PERMANENT
        error = redact(exc.message, secrets)
        attempt(chunk, row, account, _OUTCOME[result], started_at, clock, error, exc.http_status)
        return Turn(account.pk, account.name, result, error), admission.probe
    except Exception as exc:
        # UnknownOutcomeError, or a provider bug after which nobody can say whether the SMS left.
        unknown = exc if isinstance(exc, UnknownOutcomeError) else None
        error = redact(unknown.message if unknown else f"{type(exc).__name__}: {exc}", secrets)
        http_status = unknown.http_status if unknown else None
        attempt(chunk, row, account, Outcome.UNKNOWN, started_at, clock, error, http_status)
        return Turn(account.pk, account.name, Result.UNKNOWN, error), admission.probe
    attempt(chunk, row, account, Outcome.SUCCESS, started_at, clock)
    return Turn(account.pk, account.name, Result.SUCCESS, reference=reference), admission.probe


def _admit(chunk: Chunk, row: Outbox, account: ProviderAccount, rate: float) -> coordination.Admission:
    """The account's admission for this row; with the marks in Redis, the row's send marked as started too.

    Marks Redis has or may have lost (FLUSHALL, a restart, a failover) while this run is alive: the outcomes of
    every row it started are written first, so that nothing it may have sent depends on those marks, then its marks
    move to the database for the rest of the chunk, unless the sweeper fenced the run meanwhile ("gone": the row is
    not ours to send).
    """
    mark = (chunk.owner, row.pk) if chunk.marks_in_redis else None
    cooldown = chunk.rules.cooldown
    admission = coordination.admit(account.pk, rate, RATE_LIMIT_MAX_WAIT_SECONDS, cooldown=cooldown, mark=mark)
    if admission.reason != "gone":
        return admission
    logger.warning("outbox chunk %s: Redis lost its send marks; writing outcomes, then marking in the database", row.pk)
    chunk.flush()
    if not coordination.marks_to_database(chunk.owner):
        return admission
    chunk.marks_in_redis = False
    return coordination.admit(account.pk, rate, RATE_LIMIT_MAX_WAIT_SECONDS, cooldown=cooldown)


def _lost(chunk: Chunk, row: Outbox) -> tuple[None, bool]:
    # The lease lapsed (this process was paused, or the database or Redis unreachable, for longer than the lease)
    # and the sweeper took the row back: it is someone else's now, or `unknown` if a call of ours had started.
    logger.warning("outbox %s: lease lost before sending; left to the sweeper", row.pk)
    chunk.lost.add(row.pk)
    return None, False


def _record_copies(
    chunk: Chunk, row: Outbox, text: str, language: str, delivered_by: ProviderAccount, recorders: list[int]
) -> None:
    """Audit copies of a message an SMS gateway delivered. They are no delivery attempts (a file is not an SMS),
    and a copy that cannot be written is logged without touching the delivered row."""
    metadata = {"language": language, "notification_type": row.notification_type, "delivered_by": delivered_by.name}
    for account_id in recorders:
        try:
            provider = chunk.providers[account_id]
            if not isinstance(provider, Provider):
                raise provider
            provider.send(row.recipient, text, outbox_reference(row.pk), metadata=metadata)
        except Exception as exc:
            logger.warning("audit copy of outbox %s in account %s failed: %s", row.pk, account_id, exc)
