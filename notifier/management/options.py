"""Argument parsing the management commands share; a bad value is a CommandError naming the option."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from django.core.management.base import CommandError

NO_TYPE_ENABLED = (
    "No notification type is enabled (eligibleNotificationTypes); nothing to do. Enable some with e.g. "
    'NOTIFIER_CONFIG=\'{"eligibleNotificationTypes":{"expiration_of_policy":true}}\' (`manage.py demo` prints the '
    "line for all six), or --type TYPE for one run."
)


def parse_date(value: str | None, option: str = "--date") -> dt.date | None:
    """An ISO day (YYYY-MM-DD), or None when the option was not given."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: expected YYYY-MM-DD, got {value!r}") from None


def parse_base_url(value: str, option: str = "base_url") -> str:
    """An http(s) base URL without its trailing slash."""
    base_url = value.rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise CommandError(f"{option}: expected http://host:port, got {value!r}")
    return base_url
