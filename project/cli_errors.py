"""One line instead of a traceback for the mistakes a newcomer makes on the command line (manage.py).

A wrong setting (malformed NOTIFIER_CONFIG, unknown DATABASE_URL scheme) or a service that is not running (the
database, the broker, Redis) is said in one line naming the setting and what to do; `--traceback` or `-v 2`
shows the whole traceback instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def wants_traceback(argv: Sequence[str]) -> bool:
    arguments = list(argv)
    if "--traceback" in arguments:
        return True
    for index, argument in enumerate(arguments):
        value = ""
        if argument in {"-v", "--verbosity"} and index + 1 < len(arguments):
            value = arguments[index + 1]
        elif argument.startswith("--verbosity="):
            value = argument.partition("=")[2]
        elif argument.startswith("-v") and not argument.startswith("--"):
            value = argument[2:]
        if value.isdigit() and int(value) >= 2:
            return True
    return False


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def describe(exc: BaseException) -> str | None:
    """The one line for a known newcomer mistake, or None for anything else (shown as a traceback)."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import OperationalError as DatabaseError
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(exc, ImproperlyConfigured):
        return f"error: {_first_line(exc)}"
    if isinstance(exc, DatabaseError):
        where = os.environ.get("DATABASE_URL", "") or "the embedded SQLite (var/notifier.sqlite3)"
        where = where.split("@")[-1]  # never the password
        return (
            f"DATABASE_URL: database unreachable ({where}: {_first_line(exc)}); start PostgreSQL (`createdb` the "
            "database once) or fix DATABASE_URL. --traceback for details."
        )
    if isinstance(exc, BrokerError):
        return (
            f"CELERY_BROKER_URL: broker unreachable ({_first_line(exc)}); start Redis or fix CELERY_BROKER_URL "
            "(empty: the embedded in-process mode). --traceback for details."
        )
    if isinstance(exc, RedisConnectionError):
        return (
            f"REDIS_URL: Redis unreachable ({_first_line(exc)}); start Redis or fix REDIS_URL (empty: in-process "
            "locks). --traceback for details."
        )
    return None
