"""Circuit breaker and rate limit, in Redis (shared by workers) and in process memory (embedded mode)."""

from __future__ import annotations

import collections
import datetime as dt
import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from notifier import coordination

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["redis", "in-process"])
def backend(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    if request.param == "in-process":
        settings.REDIS_URL = ""
    else:
        assert settings.REDIS_URL, "these tests need REDIS_URL (make pytest sets it)"
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "circuit_breaker": {"failure_threshold": 3, "window_seconds": 60, "cooldown_seconds": 30},
    }
    coordination.reset()
    yield str(request.param)
    coordination.reset()


def test_it_opens_the_breaker_after_the_threshold_within_the_window(backend: str) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        assert coordination.record_failure(1) is False
        assert coordination.record_failure(1) is False
        clock.shift(61)  # those two left the window
        assert coordination.record_failure(1) is False
        assert coordination.record_failure(1) is False
        assert coordination.breaker_state(1) == "closed"
        assert coordination.breaker_allows(1)
        assert coordination.record_failure(1) is True
        assert coordination.breaker_state(1) == "open"
        assert not coordination.breaker_allows(1)
        assert coordination.breaker_allows(2), "another account has its own breaker"


def test_it_opens_on_failures_within_the_window_whatever_successes_come_between(backend: str) -> None:
    """Issue 12: read timeouts mixed with successes never opened a breaker that counted consecutive failures."""
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(2):
            assert coordination.record_failure(1) is False
            for _ in range(5):
                coordination.record_success(1)
            clock.shift(10)
        assert coordination.breaker_state(1) == "closed"
        assert coordination.record_failure(1) is True, "the third failure within 60 s"
        coordination.record_success(1)  # a call that started before the breaker opened
        assert coordination.breaker_state(1) == "open", "only the probe's success closes it"
        assert coordination.breaker_admit(1) == pytest.approx(30.0)
        clock.shift(12)
        assert coordination.breaker_admit(1) == pytest.approx(18.0), "the rest of the cooldown"
        clock.shift(18)
        assert coordination.breaker_admit(1) == 0.0, "this caller probes"
        assert coordination.breaker_admit(1) == pytest.approx(5.0), "another one asks again in a few seconds"


def test_it_half_opens_for_a_single_probe_then_closes_on_success(backend: str) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(3):
            coordination.record_failure(1)
        clock.shift(29)
        assert not coordination.breaker_allows(1)
        clock.shift(2)
        assert coordination.breaker_state(1) == "half-open"
        assert coordination.breaker_allows(1), "the first caller after the cooldown probes"
        assert not coordination.breaker_allows(1), "only one probe at a time"
        coordination.record_success(1)
        assert coordination.breaker_state(1) == "closed"
        assert all(coordination.breaker_allows(1) for _ in range(5))
        assert coordination.record_failure(1) is False, "failures count from zero again"


def test_it_reopens_when_the_probe_fails(backend: str) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(3):
            coordination.record_failure(1)
        clock.shift(31)
        assert coordination.breaker_allows(1)
        assert coordination.record_failure(1) is True
        assert coordination.breaker_state(1) == "open"
        clock.shift(29)
        assert not coordination.breaker_allows(1), "a new cooldown started with the failed probe"
        clock.shift(2)
        assert coordination.breaker_allows(1)


def test_it_admits_at_most_the_rate_then_makes_callers_wait(backend: str) -> None:
    admitted = [coordination.acquire_rate_slot(7, 3, max_wait=0) for _ in range(4)]
    assert [at is not None for at in admitted] == [True, True, True, False]
    assert coordination.acquire_rate_slot(7, 3, max_wait=2) is not None, "a slot frees up within a second"


def _admit(redis_url: str, account_id: int, per_second: float, count: int, results: Any) -> None:
    from django.conf import settings

    settings.REDIS_URL = redis_url
    coordination._stores.clear()  # a fresh connection in this process
    results.put([coordination.acquire_rate_slot(account_id, per_second, max_wait=20) for _ in range(count)])


@pytest.mark.slow
def test_it_holds_the_rate_limit_across_two_worker_processes(settings: Any) -> None:
    assert settings.REDIS_URL
    coordination.reset()
    per_second, each = 4, 6
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [
        context.Process(target=_admit, args=(settings.REDIS_URL, 99, per_second, each, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    admissions = sorted(at for _ in workers for at in results.get(timeout=30))
    for worker in workers:
        worker.join(timeout=10)
    assert all(worker.exitcode == 0 for worker in workers)
    assert len(admissions) == 2 * each and None not in admissions
    per_calendar_second = collections.Counter(int(at) for at in admissions)
    assert max(per_calendar_second.values()) <= per_second
    for index, start in enumerate(admissions):
        in_window = [at for at in admissions[index:] if at < start + 1]
        assert len(in_window) <= per_second, f"{len(in_window)} admissions within one second from {start}"
    coordination.reset()


def test_it_admits_through_breaker_and_rate_limit_in_one_call(backend: str) -> None:
    """Issue 15: one Redis round trip per message for the breaker check and the rate slot."""
    with time_machine.travel(T0, tick=False) as clock:
        admitted = [coordination.admit(3, 2, max_wait=0) for _ in range(3)]
        assert [(a.ok, a.probe, a.reason) for a in admitted] == [
            (True, False, ""),
            (True, False, ""),
            (False, False, "rate"),
        ]
        for _ in range(3):
            coordination.record_failure(3)
        refused = coordination.admit(3, 1000, max_wait=0)
        assert (refused.ok, refused.reason) == (False, "breaker")
        assert refused.wait == pytest.approx(30.0), "the rest of the cooldown"
        clock.shift(31)
        probe = coordination.admit(3, 1000, max_wait=0)
        assert (probe.ok, probe.probe) == (True, True), "the first caller after the cooldown probes"
        other = coordination.admit(3, 1000, max_wait=0)
        assert (other.ok, other.reason) == (False, "breaker"), "only one probe at a time"
        coordination.record_success(3)
        assert coordination.breaker_state(3) == "closed"


def test_it_keeps_the_probe_for_a_caller_that_gets_a_rate_slot(backend: str) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(3):
            coordination.record_failure(4)
        clock.shift(31)
        assert coordination.acquire_rate_slot(4, 1, max_wait=0) is not None  # the only slot of this second
        saturated = coordination.admit(4, 1, max_wait=0)
        assert (saturated.ok, saturated.reason) == (False, "rate")
        assert coordination.store().breaker_times(4)[1] is None, "no probe handed out without a slot"


def _admission_connection_id() -> int:
    store = coordination.store()
    assert isinstance(store, coordination.RedisStore)
    connection = store._own.connection
    assert connection is not None
    connection.send_command("CLIENT", "ID")
    return int(connection.read_response())


def test_the_admission_survives_a_closed_connection_and_a_forgotten_script(settings: Any) -> None:
    """The admission runs over the thread's own connection: one the server closed (a Redis restart, a timeout on
    the server's side) is replaced once, and a server that has forgotten the script (restarted) gets it again."""
    assert settings.REDIS_URL
    coordination.reset()
    client = coordination.store().client  # type: ignore[attr-defined]
    assert coordination.admit(5, 1000, max_wait=0).ok
    first = _admission_connection_id()
    assert client.client_kill_filter(_id=first) == 1
    assert coordination.admit(5, 1000, max_wait=0).ok, "a new connection, the call made once more"
    second = _admission_connection_id()
    assert second != first
    client.script_flush()
    assert coordination.admit(5, 1000, max_wait=0).ok, "the script sent again"
    assert client.script_exists(coordination.store()._admit.sha) == [True]  # type: ignore[attr-defined]
    assert _admission_connection_id() == second, "the same connection throughout"
    coordination.reset()


def _admit_in_child(results: Any) -> None:
    results.put((coordination.admit(6, 1000, max_wait=0).ok, _admission_connection_id()))


def test_a_forked_process_opens_its_own_admission_connection(settings: Any) -> None:
    """A Celery prefork child never writes into the socket of its parent (their replies would cross)."""
    assert settings.REDIS_URL
    coordination.reset()
    assert coordination.admit(6, 1000, max_wait=0).ok
    parent = _admission_connection_id()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_admit_in_child, args=(results,))
    child.start()
    admitted, connection_id = results.get(timeout=30)
    child.join(timeout=10)
    assert child.exitcode == 0 and admitted
    assert connection_id != parent
    assert _admission_connection_id() == parent, "the parent's connection still answers the parent"
    coordination.reset()
