"""What happens next to one message, given what its accounts did so far: pure, no I/O, no clock, no randomness.

The runner calls the accounts in order and, after each, asks `after`: the message is sent, its outcome unknown
(never resent automatically), it falls back to the next account, or (the last account done) it is retried at a
time, waits for a breaker or a rate limit without spending an attempt, or fails for good. Jitter comes in as a
fraction in [0, 1) so that every decision can be written down in a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

BACKOFF_CAP_SECONDS = 3600
ALL_REFUSED = "every enabled provider account refused this message permanently"
NO_ACCOUNT = "no enabled provider account left to try"


class Result(StrEnum):
    """How one account's turn ended."""

    SUCCESS = "success"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"
    INVALID = "invalid"  # the account is misconfigured: not called, a permanent failure for this message
    SKIPPED = "skipped"  # an open breaker or a saturated rate limit: not called, no attempt


class Step(StrEnum):
    SENT = "sent"
    UNKNOWN = "unknown"
    FALL_BACK = "fall back"  # try the next account
    RETRY = "retry"  # pending again at `at`, an attempt spent
    WAIT = "wait"  # pending again at `at`, no attempt spent (only breakers and rate limits stood in the way)
    FAIL = "fail"


@dataclass(frozen=True)
class Rules:
    max_attempts: int
    backoff_base: float  # seconds; the first retry comes after half to all of it
    cooldown: float  # a breaker's cooldown: how long to wait when no skipped account said how long


@dataclass(frozen=True)
class Message:
    """One message in one delivery run: attempts counted by earlier runs, and what this run's accounts did."""

    attempts: int = 0
    called: int = 0
    transient: bool = False
    skipped: bool = False
    wait: float | None = None  # when accounts were skipped: seconds until the soonest may be tried
    last_account: int | None = None  # the last account actually called (invalid ones count), shown as the provider
    errors: tuple[str, ...] = ()

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else ""


@dataclass(frozen=True)
class Turn:
    """One account's turn: its outcome, (skipped) how long until it may be tried, (success) the gateway's reference."""

    account: int
    name: str
    result: Result
    error: str = ""
    wait: float = 0.0
    reference: str = ""


@dataclass(frozen=True)
class Decision:
    step: Step
    message: Message
    at: datetime | None = None  # RETRY, WAIT: due again then
    error: str = ""
    account: int | None = None  # the account the row names as its provider
    counts_attempt: bool = False


def retry_delay(attempt: int, base: float, jitter: float) -> timedelta:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt - 1), capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, base * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=ceiling / 2 + jitter * ceiling / 2)


def usable_accounts(
    accounts: Sequence[int], refused: set[int], delivers_sms: dict[int, bool]
) -> tuple[list[int], list[int]]:
    """The accounts to try in order (enabled, minus those that refused this message permanently since its last
    resend), and the recording accounts that keep audit copies. Recording accounts deliver only when no SMS gateway
    account is left: a text file never stands in for a failed gateway."""
    usable = [account for account in accounts if account not in refused]
    if not any(delivers_sms[account] for account in usable):
        return usable, []
    return [account for account in usable if delivers_sms[account]], [
        account for account in accounts if not delivers_sms[account]
    ]


def before_accounts(
    message: Message, *, enabled: int, usable: int, now: datetime, rules: Rules, jitter: float
) -> Decision | None:
    """Before the first account: a message no account may try fails (all refused it) or spends an attempt (none
    enabled). None: go through the usable accounts."""
    if usable:
        return None
    if enabled:
        return Decision(Step.FAIL, message, error=ALL_REFUSED)
    message = replace(message, errors=(*message.errors, NO_ACCOUNT))
    return _retry_or_give_up(message, now, rules, jitter)


def after(message: Message, turn: Turn, *, last: bool, now: datetime, rules: Rules, jitter: float) -> Decision:
    """After one account's turn; `last`: no account follows it."""
    called = turn.result not in (Result.SKIPPED, Result.INVALID)
    account = turn.account if called else message.last_account
    message = replace(
        message,
        called=message.called + called,
        transient=message.transient or turn.result is Result.TRANSIENT,
        skipped=message.skipped or turn.result is Result.SKIPPED,
        wait=_sooner(message.wait, turn.wait) if turn.result is Result.SKIPPED else message.wait,
        last_account=account,
        errors=(*message.errors, f"{turn.name}: {turn.error}") if turn.error else message.errors,
    )
    if turn.result is Result.SUCCESS:
        return Decision(Step.SENT, message, account=turn.account, counts_attempt=True)
    if turn.result is Result.UNKNOWN:
        return Decision(Step.UNKNOWN, message, error=message.last_error, account=turn.account, counts_attempt=True)
    if not last:
        return Decision(Step.FALL_BACK, message)
    if not message.transient and not message.skipped:
        # Every account failed permanently (or is misconfigured): nothing will change by waiting.
        return Decision(
            Step.FAIL, message, error=message.last_error, account=account, counts_attempt=message.called > 0
        )
    if message.called == 0:
        # Only breakers and rate limits stood in the way: no attempt. Due when the soonest skipped account may be
        # tried, spread over a second or two so that the waiting rows do not all collide.
        wait = message.wait if message.wait is not None else rules.cooldown
        at = now + timedelta(seconds=wait + jitter * min(2.0, wait / 4))
        return Decision(Step.WAIT, message, at=at, error=message.last_error)
    return _retry_or_give_up(message, now, rules, jitter)


def _retry_or_give_up(message: Message, now: datetime, rules: Rules, jitter: float) -> Decision:
    attempts = message.attempts + 1
    if attempts >= rules.max_attempts:
        error = f"gave up after {attempts} attempts; last: {message.last_error}"
        return Decision(Step.FAIL, message, error=error, account=message.last_account, counts_attempt=True)
    at = now + retry_delay(attempts, rules.backoff_base, jitter)
    return Decision(
        Step.RETRY, message, at=at, error=message.last_error, account=message.last_account, counts_attempt=True
    )


def _sooner(current: float | None, wait: float) -> float:
    return wait if current is None else min(current, wait)
