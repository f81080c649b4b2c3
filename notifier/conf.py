"""The validated NOTIFIER config at run time.

Parsed from `settings.NOTIFIER` and cached on the dict's JSON, so a test (or an operator reloading settings) that
replaces the dict gets the new config without a restart, and the common case costs one json.dumps.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from django.conf import settings

from notifier.config import NotifierConfig, parse_config


@lru_cache(maxsize=16)
def _parse(serialized: str) -> NotifierConfig:
    raw: dict[str, Any] = json.loads(serialized)
    return parse_config(raw)


def get_config() -> NotifierConfig:
    raw = getattr(settings, "NOTIFIER", None) or {}
    return _parse(json.dumps(raw, sort_keys=True, default=str))
