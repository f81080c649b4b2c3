"""The circuit breaker and rate limit of notifier.coordination in process memory, for the embedded mode (one
process, no Redis): the same rules as the Redis scripts, behind one lock."""

from __future__ import annotations

import threading
import time

# While another caller probes, ask again after at most this long (the probe usually answers within seconds).
PROBE_RETRY_SECONDS = 5.0


class LocalStore:
    """The same rules in process memory, for the embedded mode (one process, no Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened: dict[int, float] = {}
        self._probe: dict[int, float] = {}
        self._failures: dict[int, list[float]] = {}
        self._admitted: dict[int, list[float]] = {}

    def allow(self, account_id: int, now: float, cooldown: float) -> tuple[int, float]:
        with self._lock:
            opened = self._opened.get(account_id)
            if opened is None:
                return 1, 0.0
            if now < opened + cooldown:
                return 0, opened + cooldown - now
            probe = self._probe.get(account_id)
            if probe is not None and now < probe + cooldown:
                return 0, min(probe + cooldown - now, PROBE_RETRY_SECONDS)
            self._probe[account_id] = now
            return 2, 0.0

    def failure(self, account_id: int, now: float, window: float, threshold: int) -> bool:
        with self._lock:
            if account_id in self._opened:
                if self._probe.pop(account_id, None) is not None:
                    self._opened[account_id] = now
                    return True
                return False
            recent = [at for at in self._failures.get(account_id, []) if at > now - window] + [now]
            if len(recent) >= threshold:
                self._opened[account_id] = now
                self._failures.pop(account_id, None)
                return True
            self._failures[account_id] = recent
            return False

    def success(self, account_id: int) -> None:
        with self._lock:
            if self._probe.pop(account_id, None) is not None:
                self._opened.pop(account_id, None)
                self._failures.pop(account_id, None)

    def breaker_times(self, account_id: int) -> tuple[float | None, float | None]:
        with self._lock:
            return self._opened.get(account_id), self._probe.get(account_id)

    def try_rate(self, account_id: int, window: float, limit: int) -> tuple[bool, float]:
        now = time.time()
        with self._lock:
            recent = [at for at in self._admitted.get(account_id, []) if at > now - window]
            if len(recent) < limit:
                recent.append(now)
                self._admitted[account_id] = recent
                return True, now
            self._admitted[account_id] = recent
            return False, recent[0] + window - now

    def admit(self, account_id: int, now: float, cooldown: float, window: float, limit: int) -> tuple[int, float]:
        with self._lock:
            probing = False
            opened = self._opened.get(account_id)
            if opened is not None:
                if now < opened + cooldown:
                    return 0, opened + cooldown - now
                probe = self._probe.get(account_id)
                if probe is not None and now < probe + cooldown:
                    return 0, min(probe + cooldown - now, PROBE_RETRY_SECONDS)
                probing = True
            clock = time.time()
            recent = [at for at in self._admitted.get(account_id, []) if at > clock - window]
            self._admitted[account_id] = recent
            if len(recent) >= limit:
                return -1, recent[0] + window - clock
            recent.append(clock)
            if probing:
                self._probe[account_id] = now
                return 2, clock
            return 1, clock

    def reset(self) -> None:
        with self._lock:
            self._opened.clear()
            self._probe.clear()
            self._failures.clear()
            self._admitted.clear()
