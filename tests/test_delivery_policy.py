"""notifier.delivery.policy: what happens next to one message, from a table of cases (no database, no clock)."""

from __future__ import annotations

import datetime as dt

import pytest

from notifier.delivery.policy import (
    ALL_REFUSED,
    NO_ACCOUNT,
    Message,
    Result,
    Rules,
    Step,
    Turn,
    after,
    before_accounts,
    retry_delay,
    usable_accounts,
)

NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
RULES = Rules(max_attempts=3, backoff_base=60.0, cooldown=30.0)
A, B = 1, 2  # account ids


def turn(account: int, result: Result, error: str = "", wait: float = 0.0) -> Turn:
    return Turn(account, f"acc{account}", result, error, wait)


# (case, message before the turn, the turn, last account?, jitter) -> (step, seconds until due, error, account,
# counts an attempt)
CASES = [
    ("success", Message(), turn(A, Result.SUCCESS), True, 0.0, (Step.SENT, None, "", A, True)),
    (
        "unknown stops at once, even with accounts left",
        Message(),
        turn(A, Result.UNKNOWN, "read timeout"),
        False,
        0.0,
        (Step.UNKNOWN, None, "acc1: read timeout", A, True),
    ),
    (
        "transient, an account left",
        Message(),
        turn(A, Result.TRANSIENT, "503"),
        False,
        0.0,
        (Step.FALL_BACK,) + (None,) * 4,
    ),
    (
        "permanent, an account left",
        Message(),
        turn(A, Result.PERMANENT, "400"),
        False,
        0.0,
        (Step.FALL_BACK,) + (None,) * 4,
    ),
    (
        "transient, last: first retry after half the base",
        Message(),
        turn(A, Result.TRANSIENT, "503"),
        True,
        0.0,
        (Step.RETRY, 30.0, "acc1: 503", A, True),
    ),
    (
        "transient, last: full jitter doubles it",
        Message(),
        turn(A, Result.TRANSIENT, "503"),
        True,
        1.0,
        (Step.RETRY, 60.0, "acc1: 503", A, True),
    ),
    (
        "second retry: twice the first",
        Message(attempts=1),
        turn(A, Result.TRANSIENT, "503"),
        True,
        0.0,
        (Step.RETRY, 60.0, "acc1: 503", A, True),
    ),
    (
        "transient at the last attempt: gives up",
        Message(attempts=2),
        turn(A, Result.TRANSIENT, "503"),
        True,
        0.0,
        (Step.FAIL, None, "gave up after 3 attempts; last: acc1: 503", A, True),
    ),
    (
        "permanent, last, nothing transient: fails at once",
        Message(called=1, last_account=A, errors=("acc1: 400",)),
        turn(B, Result.PERMANENT, "bad number"),
        True,
        0.0,
        (Step.FAIL, None, "acc2: bad number", B, True),
    ),
    (
        "an earlier transient keeps the message alive after a permanent",
        Message(called=1, transient=True, last_account=A, errors=("acc1: 503",)),
        turn(B, Result.PERMANENT, "bad number"),
        True,
        0.0,
        (Step.RETRY, 30.0, "acc2: bad number", B, True),
    ),
    (
        "only a misconfigured account: fails, no attempt, no provider named",
        Message(),
        turn(A, Result.INVALID, "invalid account: no URL"),
        True,
        0.0,
        (Step.FAIL, None, "acc1: invalid account: no URL", None, False),
    ),
    (
        "only a skipped account: waits for it, no attempt",
        Message(),
        turn(A, Result.SKIPPED, "circuit breaker open", wait=8.0),
        True,
        0.0,
        (Step.WAIT, 8.0, "acc1: circuit breaker open", None, False),
    ),
    (
        "skipped accounts: the soonest wait, spread by up to a quarter of it",
        Message(skipped=True, wait=4.0, errors=("acc1: rate limit (5/s) saturated",)),
        turn(B, Result.SKIPPED, "circuit breaker open", wait=12.0),
        True,
        1.0,
        (Step.WAIT, 5.0, "acc2: circuit breaker open", None, False),
    ),
    (
        "skipped after a transient call: a retry, the called account named",
        Message(called=1, transient=True, last_account=A, errors=("acc1: 503",)),
        turn(B, Result.SKIPPED, "circuit breaker open", wait=8.0),
        True,
        0.0,
        (Step.RETRY, 30.0, "acc2: circuit breaker open", A, True),
    ),
    (
        "skipped after a permanent call: a retry, since the breaker may close",
        Message(called=1, last_account=A, errors=("acc1: 400",)),
        turn(B, Result.SKIPPED, "circuit breaker open", wait=8.0),
        True,
        0.0,
        (Step.RETRY, 30.0, "acc2: circuit breaker open", A, True),
    ),
]


@pytest.mark.parametrize(
    ("message", "the_turn", "last", "jitter", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_it_decides_after_each_turn(
    message: Message, the_turn: Turn, last: bool, jitter: float, expected: tuple[object, ...]
) -> None:
    decision = after(message, the_turn, last=last, now=NOW, rules=RULES, jitter=jitter)
    due = (decision.at - NOW).total_seconds() if decision.at is not None else None
    if decision.step is Step.FALL_BACK:
        assert (decision.step, due, decision.counts_attempt) == (Step.FALL_BACK, None, False)
        return
    assert (decision.step, due, decision.error, decision.account, decision.counts_attempt) == expected


def test_it_carries_what_each_turn_did_into_the_next() -> None:
    first = after(Message(), turn(A, Result.TRANSIENT, "503"), last=False, now=NOW, rules=RULES, jitter=0.0)
    second = after(
        first.message, turn(B, Result.SKIPPED, "rate limit", wait=3.0), last=False, now=NOW, rules=RULES, jitter=0.0
    )
    assert second.message == Message(
        called=1, transient=True, skipped=True, wait=3.0, last_account=A, errors=("acc1: 503", "acc2: rate limit")
    )


BEFORE = [
    ("accounts to try", 2, 1, Message(), None),
    ("every account refused it", 2, 0, Message(), (Step.FAIL, None, ALL_REFUSED, False)),
    ("no account enabled: an attempt spent", 0, 0, Message(), (Step.RETRY, 30.0, NO_ACCOUNT, True)),
    (
        "no account enabled at the last attempt",
        0,
        0,
        Message(attempts=2),
        (Step.FAIL, None, f"gave up after 3 attempts; last: {NO_ACCOUNT}", True),
    ),
]


@pytest.mark.parametrize(
    ("enabled", "usable", "message", "expected"), [case[1:] for case in BEFORE], ids=[case[0] for case in BEFORE]
)
def test_it_decides_before_any_account(
    enabled: int, usable: int, message: Message, expected: tuple[object, ...] | None
) -> None:
    decision = before_accounts(message, enabled=enabled, usable=usable, now=NOW, rules=RULES, jitter=0.0)
    if decision is None:
        assert expected is None
        return
    due = (decision.at - NOW).total_seconds() if decision.at is not None else None
    assert (decision.step, due, decision.error, decision.counts_attempt) == expected


USABLE = [
    ("gateways in order, a recorder keeps copies", [A, B, 3], set(), {A: True, B: True, 3: False}, ([A, B], [3])),
    ("a refused gateway is left out", [A, B, 3], {A}, {A: True, B: True, 3: False}, ([B], [3])),
    ("no gateway left: the recorder delivers", [A, 3], {A}, {A: True, 3: False}, ([3], [])),
    ("recorders only (development)", [3, 4], set(), {3: False, 4: False}, ([3, 4], [])),
    ("everything refused", [A, 3], {A, 3}, {A: True, 3: False}, ([], [])),
]


@pytest.mark.parametrize(
    ("accounts", "refused", "sms", "expected"), [case[1:] for case in USABLE], ids=[case[0] for case in USABLE]
)
def test_it_orders_the_accounts_to_try(
    accounts: list[int], refused: set[int], sms: dict[int, bool], expected: tuple[list[int], list[int]]
) -> None:
    assert usable_accounts(accounts, refused, sms) == expected


@pytest.mark.parametrize(
    ("attempt", "jitter", "seconds"),
    [(1, 0.0, 30.0), (1, 0.5, 45.0), (3, 0.0, 120.0), (7, 1.0, 3600.0), (20, 0.0, 1800.0)],
)
def test_it_backs_off_exponentially_within_the_cap(attempt: int, jitter: float, seconds: float) -> None:
    assert retry_delay(attempt, 60.0, jitter) == dt.timedelta(seconds=seconds)
