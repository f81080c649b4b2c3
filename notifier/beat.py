"""One beat at a time: django-celery-beat's scheduler behind a Redis lock, with a heartbeat for the health check.

bin/beat runs celery beat with LockedDatabaseScheduler. On every tick it takes or renews the lock
`notifier:lock:beat` (expiry NOTIFIER_BEAT_LOCK_SECONDS, 60 s); only the holder sends due tasks. A second beat
(started by mistake, or a standby) ticks too but sends nothing, and takes over within the expiry once the first
stops. Each beat writes a heartbeat (`notifier:beat:heartbeat:<hostname>`, Unix time) on every tick; `manage.py
beat_health` fails when its own is older than NOTIFIER_BEAT_STALE_SECONDS (120 s) — a stuck or dead beat.
Without REDIS_URL (embedded mode) there is nothing to share, and the scheduler behaves as django-celery-beat's.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import time
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

from notifier.locks import KEY_PREFIX, redis_client
from notifier.settings import get_settings

logger = logging.getLogger(__name__)
LOCK_KEY = KEY_PREFIX + "beat"
HEARTBEAT_PREFIX = "notifier:beat:heartbeat:"
# Renew only while still the owner; take it when free.
_TAKE_OR_RENEW = """
local holder = redis.call("get", KEYS[1])
if holder == ARGV[1] or not holder then
    redis.call("set", KEYS[1], ARGV[1], "EX", ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end
return 0
"""


def lock_seconds() -> int:
    return get_settings().beat_lock_seconds


def heartbeat_key(hostname: str | None = None) -> str:
    return HEARTBEAT_PREFIX + (hostname or socket.gethostname())


class LockedDatabaseScheduler(DatabaseScheduler):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._token = f"{socket.gethostname()}:{secrets.token_hex(8)}"
        self._holding = False
        self._redis = redis_client()
        super().__init__(*args, **kwargs)

    def _take_or_renew(self) -> bool:
        if self._redis is None:
            return True
        try:
            held = bool(self._redis.eval(_TAKE_OR_RENEW, 1, LOCK_KEY, self._token, lock_seconds()))
            self._redis.set(heartbeat_key(), str(time.time()), ex=max(lock_seconds() * 10, 600))
        except Exception as exc:  # Redis away: send nothing rather than risk a second beat
            logger.warning("beat: Redis unreachable, not sending (%s)", exc)
            held = False
        if held and not self._holding:
            logger.info("beat: acquired the beat lock (%s); sending due tasks", self._token)
        elif not held and self._holding:
            logger.warning("beat: lost the beat lock; another beat sends the tasks now")
        elif not held and not self._holding:
            logger.info("beat: another beat holds the beat lock; standing by")
        self._holding = held
        return held

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._take_or_renew():
            return float(min(5, lock_seconds() / 3))
        interval = float(super().tick(*args, **kwargs))
        return min(interval, lock_seconds() / 3)  # wake often enough to renew the lock

    def close(self) -> None:
        if self._redis is not None and self._holding:
            with contextlib.suppress(Exception):  # the lock expires by itself
                self._redis.eval(_RELEASE, 1, LOCK_KEY, self._token)
        super().close()
