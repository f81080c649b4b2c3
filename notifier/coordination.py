"""State shared by every delivery worker: a circuit breaker per provider account and a rate limit per account.

The breaker opens after `failure_threshold` failures within `window_seconds`, whatever successes came in between
(a sorted set of failure times per account); after `cooldown_seconds` one caller gets the half-open probe, whose
success closes it and whose failure opens it for another cooldown.

Both live in Redis at settings.REDIS_URL, updated by Lua scripts so that a check and its update are one step even
with many workers. With REDIS_URL empty (embedded mode, one process) the same rules run in process memory.

A delivery run may keep its send marks here too (NOTIFIER_DELIVERY_MARKS, "redis" by default with REDIS_URL): the
mark that a row's send has started is set by the same script that admits the send, one hash per run, instead of a
committed database write per message (notifier.delivery.store explains what the marks are for). The sweeper fences
a run before it takes back its rows. Marks that may be incomplete are detected, never mistaken for "nothing
started": the hash is gone (FLUSHALL, an eviction, a restart without persistence) or was written to another server
than the one answering now (each hash names the server's run_id, new at every start: a restart from a snapshot or an
AOF, a failover).

The breaker reads time from time.time() (passed into the scripts) so tests can pin it; the rate limiter uses the
Redis server's clock so workers on different hosts agree on what "this second" is.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis
from django.conf import settings

from notifier.coordination_local import PROBE_RETRY_SECONDS, LocalStore
from notifier.settings import get_config, get_settings

KEY_PREFIX = "notifier:"
# Send marks outlive any run (a chunk ends within its stall allowance) by far, so that the sweeper finds a dead run's
# marks; a run still leased when they have expired is treated as if they were lost.
MARKS_KEEP_SECONDS = 2 * 24 * 3600
BreakerState = Literal["closed", "open", "half-open"]

# {1}: closed; {2}: this caller is the half-open probe; {0, seconds}: refused (open, or another caller is probing)
# and when to ask again.
_ALLOW = """
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if not opened then return {1, '0'} end
local now = tonumber(ARGV[1])
local cooldown = tonumber(ARGV[2])
if now < tonumber(opened) + cooldown then return {0, tostring(tonumber(opened) + cooldown - now)} end
local probe = redis.call('HGET', KEYS[1], 'probe_at')
if probe and now < tonumber(probe) + cooldown then
  return {0, tostring(math.min(tonumber(probe) + cooldown - now, tonumber(ARGV[3])))}
end
redis.call('HSET', KEYS[1], 'probe_at', ARGV[1])
return {2, '0'}
"""

# A success closes the breaker only when it is the probe's; while closed, failures stay in their window.
_SUCCESS = """
if redis.call('HEXISTS', KEYS[1], 'probe_at') == 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""

# 1 when this failure opened (or re-opened) the breaker.
_FAILURE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
if redis.call('HEXISTS', KEYS[1], 'opened_at') == 1 then
  if redis.call('HEXISTS', KEYS[1], 'probe_at') == 1 then
    redis.call('HSET', KEYS[1], 'opened_at', ARGV[1])
    redis.call('HDEL', KEYS[1], 'probe_at')
    return 1
  end
  return 0
end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= threshold then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1])
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('EXPIRE', KEYS[2], math.ceil(window) + 60)
return 0
"""

# A sliding log: admit when fewer than `limit` admissions lie in the last `window` seconds.
# Returns {1, admitted at} or {0, seconds to wait}.
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return {1, tostring(now)}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
"""


# The Redis server's run_id: new at every start, so a restart (even one that reloads an older snapshot or an AOF
# missing its last second) and a replica promoted in a failover are told from the server the marks were written to.
_SERVER_ID = "string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')"

# Breaker and rate limit in one round trip, for each send: {0, seconds} the breaker refuses (open, or another caller
# probes); {-1, seconds} the rate limit is saturated (the probe, if any, is left for a later call); {1, admitted
# at} admitted while closed; {2, admitted at} admitted as the half-open probe. KEYS: breaker, rate log and, when
# the run keeps its send marks here, the run's marks. ARGV: now, cooldown, probe retry, rate window, rate limit,
# admission id and, with the marks, the outbox id. With the marks: {-2} the sweeper has fenced the run, {-3} the
# marks are gone or were written to another server (Redis restarted, was flushed, failed over); an admission marks
# the row as started in the same step.
_ADMIT = f"""
if KEYS[3] then
  local run = redis.call('HMGET', KEYS[3], '_', '~server')
  if run[1] and run[1] ~= 'open' then return {{-2, '0'}} end
  if not run[1] or run[2] ~= {_SERVER_ID} then return {{-3, '0'}} end
end
local now = tonumber(ARGV[1])
local cooldown = tonumber(ARGV[2])
local probing = false
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if opened then
  if now < tonumber(opened) + cooldown then return {{0, tostring(tonumber(opened) + cooldown - now)}} end
  local probe = redis.call('HGET', KEYS[1], 'probe_at')
  if probe and now < tonumber(probe) + cooldown then
    return {{0, tostring(math.min(tonumber(probe) + cooldown - now, tonumber(ARGV[3])))}}
  end
  probing = true
end
local t = redis.call('TIME')
local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', clock - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {{-1, tostring(tonumber(oldest[2]) + window - clock)}}
end
redis.call('ZADD', KEYS[2], clock, ARGV[6])
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000) + 1000)
if KEYS[3] then redis.call('HSET', KEYS[3], ARGV[7], '1') end
if probing then
  redis.call('HSET', KEYS[1], 'probe_at', ARGV[1])
  return {{2, tostring(clock)}}
end
return {{1, tostring(clock)}}
"""

# A run's marks, open, with the server they are written to. KEYS: the run's marks. ARGV: seconds to keep them.
_OPEN = f"""
redis.call('HSET', KEYS[1], '_', 'open', '~server', {_SERVER_ID})
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# The sweeper's fence on a run whose leases expired: from now on its admissions are refused. Returns the state it
# found ('open', 'fenced'; 'database': the run marks in the database; 'gone' when the marks were lost or written to
# another server, then fenced as 'gone' for good, so that a later sweep never reads what is left as complete) and
# the rows marked. KEYS: the run's marks. ARGV: seconds to keep them.
_FENCE = f"""
local state = redis.call('HGET', KEYS[1], '_')
if state == 'database' then return {{'database'}} end
local server = {_SERVER_ID}
local trusted = state and state ~= 'gone' and redis.call('HGET', KEYS[1], '~server') == server
redis.call('HSET', KEYS[1], '_', trusted and 'fenced' or 'gone', '~server', server)
redis.call('EXPIRE', KEYS[1], ARGV[1])
if not trusted then return {{'gone'}} end
local rows = redis.call('HKEYS', KEYS[1])
table.insert(rows, 1, state)
return rows
"""

# A live run whose marks are gone, or were written to another server, goes on with its marks in the database (after
# writing what it has done): 1, or 0 when this server's sweeper has fenced it meanwhile. (A fence the server lost in
# a restart is no matter: each mark in the database proves again that the row is still the run's.) KEYS: the run's
# marks. ARGV: seconds to keep them.
_TO_DATABASE = f"""
local run = redis.call('HMGET', KEYS[1], '_', '~server')
local server = {_SERVER_ID}
if run[1] and run[1] ~= 'database' and run[2] == server then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_', 'database', '~server', server)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class BreakerSettings:
    threshold: int
    window: float
    cooldown: float


def breaker_settings() -> BreakerSettings:
    config = get_config().circuit_breaker
    return BreakerSettings(config.failure_threshold, float(config.window_seconds), float(config.cooldown_seconds))


class _Store(Protocol):
    def allow(self, account_id: int, now: float, cooldown: float) -> tuple[int, float]: ...
    def failure(self, account_id: int, now: float, window: float, threshold: int) -> bool: ...
    def success(self, account_id: int) -> None: ...
    def breaker_times(self, account_id: int) -> tuple[float | None, float | None]: ...
    def try_rate(self, account_id: int, window: float, limit: int) -> tuple[bool, float]: ...
    def admit(self, account_id: int, now: float, cooldown: float, window: float, limit: int) -> tuple[int, float]: ...
    def reset(self) -> None: ...


def _breaker_key(account_id: int) -> str:
    return f"{KEY_PREFIX}breaker:{account_id}"


def _rate_key(account_id: int) -> str:
    return f"{KEY_PREFIX}rate:{account_id}"


def _marks_key(owner: str) -> str:
    return f"{KEY_PREFIX}marks:{owner}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _AdmissionConnection(threading.local):
    """This thread's own connection for the admission script, and the process it was opened in."""

    connection: Any = None
    pid: int = 0


class RedisStore:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._own = _AdmissionConnection()
        self._allow = self.client.register_script(_ALLOW)
        self._failure = self.client.register_script(_FAILURE)
        self._success = self.client.register_script(_SUCCESS)
        self._rate = self.client.register_script(_RATE)
        self._admit = self.client.register_script(_ADMIT)
        self._open = self.client.register_script(_OPEN)
        self._fence = self.client.register_script(_FENCE)
        self._to_database = self.client.register_script(_TO_DATABASE)

    def allow(self, account_id: int, now: float, cooldown: float) -> tuple[int, float]:
        args = [repr(now), repr(cooldown), repr(PROBE_RETRY_SECONDS)]
        code, wait = self._allow(keys=[_breaker_key(account_id)], args=args)
        return int(code), float(wait)

    def failure(self, account_id: int, now: float, window: float, threshold: int) -> bool:
        key = _breaker_key(account_id)
        args: list[str | int] = [repr(now), repr(window), threshold, uuid.uuid4().hex]
        return bool(int(self._failure(keys=[key, f"{key}:failures"], args=args)))

    def success(self, account_id: int) -> None:
        key = _breaker_key(account_id)
        self._success(keys=[key, f"{key}:failures"])

    def breaker_times(self, account_id: int) -> tuple[float | None, float | None]:
        opened, probe = self.client.hmget(_breaker_key(account_id), ["opened_at", "probe_at"])
        return (float(opened) if opened else None, float(probe) if probe else None)

    def try_rate(self, account_id: int, window: float, limit: int) -> tuple[bool, float]:
        admitted, value = self._rate(keys=[_rate_key(account_id)], args=[repr(window), limit, uuid.uuid4().hex])
        return bool(int(admitted)), float(value)

    def admit(
        self,
        account_id: int,
        now: float,
        cooldown: float,
        window: float,
        limit: int,
        mark: tuple[str, int] | None = None,
    ) -> tuple[int, float]:
        # One EVALSHA over this thread's own connection (`_admission`).
        args: list[str | int] = [
            repr(now),
            repr(cooldown),
            repr(PROBE_RETRY_SECONDS),
            repr(window),
            limit,
            uuid.uuid4().hex,
        ]
        keys = [_breaker_key(account_id), _rate_key(account_id)]
        if mark is not None:
            keys.append(_marks_key(mark[0]))
            args.append(mark[1])
        code, value = self._admission(keys, args)
        return int(code), float(value)

    def _admission(self, keys: list[str], args: list[str | int]) -> Any:
        """The admission script, once per message: sent over this thread's own connection, without the pool's
        checkout, retry wrapper and metrics around each command (~45 µs of CPU a call, as much as the call).

        A connection that broke since its last use (Redis restarted, a failover) is replaced and the call made once
        more: a call Redis may have run already only marks the same row again and takes one more rate slot. A
        server that has forgotten the script (restarted) gets it again with EVAL. A timeout is not repeated."""
        own = self._own
        if own.connection is None or own.pid != os.getpid():  # never a socket inherited across fork
            pool = self.client.connection_pool
            own.connection, own.pid = pool.connection_class(**pool.connection_kwargs), os.getpid()
        connection = own.connection
        command = ("EVALSHA", self._admit.sha, len(keys), *keys, *args)
        for again in (True, False):
            try:
                try:
                    connection.send_command(*command)
                    return connection.read_response()
                except redis.exceptions.NoScriptError:
                    connection.send_command("EVAL", _ADMIT, *command[2:])
                    return connection.read_response()
            except redis.ConnectionError:
                connection.disconnect()
                if not again:
                    raise
        raise AssertionError("unreachable")

    def open_run(self, owner: str) -> None:
        self._open(keys=[_marks_key(owner)], args=[MARKS_KEEP_SECONDS])

    def fence(self, owner: str) -> tuple[str, set[int]]:
        state, *rows = self._fence(keys=[_marks_key(owner)], args=[MARKS_KEEP_SECONDS])
        return _text(state), {int(row) for row in map(_text, rows) if row.isdigit()}

    def to_database(self, owner: str) -> bool:
        return bool(int(self._to_database(keys=[_marks_key(owner)], args=[MARKS_KEEP_SECONDS])))

    def close_run(self, owner: str) -> None:
        self.client.delete(_marks_key(owner))

    def reset(self) -> None:
        keys = list(self.client.scan_iter(match=f"{KEY_PREFIX}breaker:*")) + list(
            self.client.scan_iter(match=f"{KEY_PREFIX}rate:*")
        )
        if keys:
            self.client.delete(*keys)


_stores: dict[str, _Store] = {}
_stores_lock = threading.Lock()


def store() -> _Store:
    url = settings.REDIS_URL or ""
    with _stores_lock:
        found = _stores.get(url)
        if found is None:
            found = RedisStore(url) if url else LocalStore()
            _stores[url] = found
        return found


# --- circuit breaker ---------------------------------------------------------------------------------------


def breaker_admit(account_id: int) -> float:
    """0 when this account may be tried now; else the seconds until it may be (the rest of its cooldown, or a few
    seconds while another caller probes it). After the cooldown exactly one caller gets the half-open probe."""
    code, wait = store().allow(account_id, time.time(), breaker_settings().cooldown)
    return 0.0 if code != 0 else max(wait, 0.001)


def breaker_allows(account_id: int) -> bool:
    """May this account be tried now? Open: no. After the cooldown exactly one caller gets the half-open probe."""
    return breaker_admit(account_id) == 0


def record_failure(account_id: int) -> bool:
    """Count a failure of the account (or fail its probe). True when this opened the breaker."""
    config = breaker_settings()
    return store().failure(account_id, time.time(), config.window, config.threshold)


def record_success(account_id: int) -> None:
    """A successful call: closes the breaker when it was the half-open probe; failures in the window still count."""
    store().success(account_id)


def breaker_state(account_id: int) -> BreakerState:
    opened, _probe = store().breaker_times(account_id)
    if opened is None:
        return "closed"
    return "open" if time.time() < opened + breaker_settings().cooldown else "half-open"


# --- rate limit --------------------------------------------------------------------------------------------


def _window(per_second: float) -> tuple[float, int]:
    """Admissions allowed per window: `per_second` in one second, or one per 1/rate seconds when below 1/s."""
    if per_second >= 1:
        return 1.0, int(per_second)
    return 1.0 / per_second, 1


def acquire_rate_slot(account_id: int, per_second: float, max_wait: float = 5.0) -> float | None:
    """Block until the account may send one more message (shared by all workers).

    Returns the admission time on the limiter's clock, or None when no slot came within `max_wait` seconds.
    """
    if per_second <= 0:
        raise ValueError("per_second: must be positive")
    window, limit = _window(per_second)
    deadline = time.monotonic() + max_wait
    while True:
        admitted, value = store().try_rate(account_id, window, limit)
        if admitted:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(max(value, 0.001), remaining))


@dataclass(frozen=True)
class Admission:
    """What `admit` decided for one send: `ok`, whether this caller is the breaker's half-open probe (only its
    outcome changes the breaker's state on success), else why not and for how long."""

    ok: bool
    probe: bool = False
    reason: Literal["", "breaker", "rate", "fenced", "gone"] = ""
    wait: float = 0.0


def admit(
    account_id: int,
    per_second: float,
    max_wait: float = 5.0,
    *,
    cooldown: float | None = None,
    mark: tuple[str, int] | None = None,
) -> Admission:
    """Breaker check and rate-limit slot for one send, in one Redis round trip (one script) while a slot is free.

    A saturated rate limit is waited for, up to `max_wait` seconds (each retry is one more round trip); an open
    breaker is not. Same rules as `breaker_admit` followed by `acquire_rate_slot`, except that the half-open probe
    is handed out only together with a rate slot, so a probe never waits behind the rate limit.

    `mark` (a run's owner token, an outbox id): the run keeps its send marks in Redis (`open_run`), and an
    admission marks the row as started in the same step. Refused as "fenced" once the sweeper has fenced the run,
    and as "gone" when Redis has lost the run's marks.
    """
    if per_second <= 0:
        raise ValueError("per_second: must be positive")
    window, limit = _window(per_second)
    cooldown = breaker_settings().cooldown if cooldown is None else cooldown
    deadline = time.monotonic() + max_wait
    while True:
        if mark is None:
            code, value = store().admit(account_id, time.time(), cooldown, window, limit)
        else:
            code, value = _marks_store().admit(account_id, time.time(), cooldown, window, limit, mark)
        if code > 0:
            return Admission(ok=True, probe=code == 2)
        if code == 0:
            return Admission(ok=False, reason="breaker", wait=max(value, 0.001))
        if code == -2:
            return Admission(ok=False, reason="fenced")
        if code == -3:
            return Admission(ok=False, reason="gone")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Admission(ok=False, reason="rate", wait=1.0)
        time.sleep(min(max(value, 0.001), remaining))


def reset() -> None:
    """Forget all breaker and rate-limit state (tests; an operator after fixing a gateway)."""
    store().reset()


# --- send marks --------------------------------------------------------------------------------------------


def marks_in_redis() -> bool:
    """Do delivery runs keep their send marks in Redis (REDIS_URL set and NOTIFIER_DELIVERY_MARKS "redis")?"""
    return bool(settings.REDIS_URL) and get_settings().delivery_marks == "redis"


def _marks_store() -> RedisStore:
    found = store()
    if not isinstance(found, RedisStore):
        raise RuntimeError("send marks in Redis need REDIS_URL")
    return found


def open_run(owner: str) -> None:
    """Before a run claims its rows: the hash of its send marks, open (kept MARKS_KEEP_SECONDS at most)."""
    _marks_store().open_run(owner)


def fence_run(owner: str) -> set[int] | None:
    """The sweeper, before it takes back rows of `owner` whose leases expired: refuse the run every further
    admission, and return the rows it marked as started in Redis (none once it marks in the database). None when
    the marks cannot be trusted to be complete: lost (FLUSHALL, an eviction, a restart without persistence) or
    written before the server last started (a restart from a snapshot or an AOF, a failover): any of the run's
    rows may have been sent."""
    if not settings.REDIS_URL:
        return None  # marks written to a Redis this process does not know of
    state, rows = _marks_store().fence(owner)
    return None if state == "gone" else rows


def marks_to_database(owner: str) -> bool:
    """A live run whose marks Redis lost, after writing the outcomes of every row it started: its marks are in
    the database from now on (notifier.delivery.store.take_turn). False: the sweeper fenced the run meanwhile."""
    return _marks_store().to_database(owner)


def close_run(owner: str) -> None:
    """After the run's outcomes are written: its marks are no longer needed."""
    _marks_store().close_run(owner)
