"""Non-blocking locks for periodic jobs: a second copy does not wait, it skips and says so.

Redis (settings.REDIS_URL) when configured, so that two beats or two workers see the same lock; in the embedded
mode (no REDIS_URL) a lock inside this process, which is all there is then. A lock is released only by the
holder's token, so a run that outlived its expiry cannot release the lock of the run that came after it.
"""

from __future__ import annotations

import secrets
import threading
import time
from types import TracebackType
from typing import Any

from django.conf import settings

from notifier.settings import get_settings

KEY_PREFIX = "notifier:lock:"

# Compare-and-delete in one step: only the owner's token releases the lock.
_RELEASE_SCRIPT = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""

_local_locks: dict[str, tuple[str, float]] = {}
_local_guard = threading.Lock()


def redis_client() -> Any:
    """A client for settings.REDIS_URL, or None in the embedded mode."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)


class NonBlockingLock:
    def __init__(self, name: str, ttl_seconds: int) -> None:
        if ttl_seconds < 1:
            raise ValueError(f"ttl_seconds: must be at least 1, got {ttl_seconds}")
        self.key = KEY_PREFIX + name
        self.ttl_seconds = ttl_seconds
        self.token = secrets.token_hex(16)
        self.acquired = False
        self._redis = redis_client()

    def acquire(self) -> bool:
        if self._redis is not None:
            self.acquired = bool(self._redis.set(self.key, self.token, nx=True, ex=self.ttl_seconds))
            return self.acquired
        now = time.monotonic()
        with _local_guard:
            held = _local_locks.get(self.key)
            if held is not None and held[1] > now:
                return False
            _local_locks[self.key] = (self.token, now + self.ttl_seconds)
        self.acquired = True
        return True

    def release(self) -> bool:
        """True if this holder still owned the lock and released it."""
        if not self.acquired:
            return False
        self.acquired = False
        if self._redis is not None:
            return bool(self._redis.eval(_RELEASE_SCRIPT, 1, self.key, self.token))
        with _local_guard:
            held = _local_locks.get(self.key)
            if held is not None and held[0] == self.token:
                del _local_locks[self.key]
                return True
        return False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def dispatcher_lock() -> NonBlockingLock:
    """The one lock every dispatcher run takes: beat's task, `send_notifications` and the demo alike.

    Its expiry frees it if the holder died; a run outliving it could overlap the next one, which stays safe
    (exactly-once is the database's job) but wasteful.
    """
    return NonBlockingLock("dispatcher", get_settings().dispatcher_lock_seconds)
