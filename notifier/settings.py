"""The service's own settings in one typed object: every `NOTIFIER_*` value and the `NOTIFIER` dict (SPEC §10).

Read from the environment once, when project/settings.py loads (`from_environment`: a ServiceSettings): a wrong value
stops the process with a message naming the variable. project/settings.py then publishes each field as the Django
setting of the same name (`NOTIFIER_DELIVERY_CHUNK_SIZE`, ...; the dict as `NOTIFIER`), so that a test can override
one the Django way; the code reads them back through `get_settings()` / `get_config()`, validated by the same models
and cached on the values (a replaced setting is seen without a restart).
"""

from __future__ import annotations

import copy
import json
import operator
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from django.conf import settings
from django.utils.functional import empty
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from notifier.config import ConfigError, NotifierConfig, load_from_environment, parse_config

PROVIDER_CLASSES = [
    "notifier.providers.ega.EGASMSGateway",
    "notifier.providers.text.TextNotificationProvider",
    "notifier.providers.http_json.HttpJsonProvider",
    "notifier.providers.http_generic.HttpProvider",
    "notifier.providers.http_generic.AfricasTalkingProvider",
    "notifier.providers.http_generic.TwilioProvider",
    "notifier.providers.http_generic.InfobipProvider",
]
# Names that once meant something: set, they stop the process with what replaced them.
RETIRED = {
    "NOTIFIER_SENDING_STALE_SECONDS": "no longer used; delivery rows are leased, see NOTIFIER_DELIVERY_LEASE_SECONDS",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class NotifierSettings(BaseModel):
    """Each field is the environment variable (and Django setting) NOTIFIER_<FIELD NAME IN CAPITALS>."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Phones and languages
    default_region: str = Field(default="TZ", pattern=r"^[A-Za-z]{2}$")  # for parsing local phone numbers
    default_language: str = ""  # empty: the first openIMIS language (consent), English (messages)
    # Web
    enable_test_sms: bool = False  # serve the fake eGA gateway test_sms/ outside DEBUG
    metrics_token: str = ""  # bearer token for metrics/
    public_url: str = ""  # the service's address as gateways reach it; empty: the request's own URL
    # Reports: how long a report file (a PDF produced by a worker) is kept.
    report_keep_hours: int = Field(default=24, ge=1)
    # Beat, dispatcher and health
    beat_lock_seconds: int = Field(default=60, ge=1)
    beat_stale_seconds: int = Field(default=120, ge=1)
    dispatcher_lock_seconds: int = Field(default=1800, ge=1)
    heartbeat_grace_seconds: int = Field(default=900, ge=1)
    phone_refresh_hour: str = "2"  # "2", "2,14", "1-3" (parsed by notifier.schedule at start-up)
    # Delivery and the sweeper
    delivery_chunk_size: int = Field(default=50, ge=1)
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    delivery_flush_seconds: float = Field(default=2.0, gt=0)  # longest a chunk keeps outcomes before writing them
    # Where a run marks a send as started: "redis" (with REDIS_URL; in the admission's round trip) or "database"
    # (a committed conditional write per message, as before the marks moved to Redis).
    delivery_marks: Literal["redis", "database"] = "redis"
    retry_base_seconds: float = Field(default=60.0, gt=0)
    sweep_interval_seconds: int = Field(default=15, ge=1)
    sweep_grace_seconds: int = Field(default=600, ge=1)
    sweep_limit: int = Field(default=5000, ge=1)
    sweep_lock_seconds: int = Field(default=120, ge=1)
    # Processes
    worker_conn_max_age: int = Field(default=300, ge=0)
    log_level: str = "INFO"
    db_schema: str = "notifier"  # attached mode: the schema of everything the service and Django create
    var_dir: str = ""  # empty: var/ in the checkout
    provider_classes: tuple[str, ...] = Field(default=tuple(PROVIDER_CLASSES), min_length=1)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class ServiceSettings(NotifierSettings):
    """What start-up reads: the NOTIFIER_* values and the NOTIFIER dict (NOTIFIER_CONFIG / NOTIFIER_CONFIG_FILE)."""

    config: NotifierConfig = Field(default_factory=NotifierConfig)


_FLAT_FIELDS = tuple(NotifierSettings.model_fields)


def setting_name(field: str) -> str:
    return f"NOTIFIER_{field.upper()}"


def _describe(exc: ValidationError, prefix: str) -> str:
    parts = []
    for error in exc.errors():
        name = setting_name(str(error["loc"][0])) if error["loc"] else "NOTIFIER_*"
        message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{prefix}{name}: {message}, got {error['input']!r}" if error["loc"] else f"{prefix}{message}")
    return "; ".join(parts)


def from_environment(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """The settings from NOTIFIER_* variables (unset or empty: the default). Raises ConfigError naming the variable."""
    environ = os.environ if environ is None else environ
    for name, why in RETIRED.items():
        if name in environ:
            raise ConfigError(f"{name}: {why}")
    # Numbers and booleans as pydantic reads them from strings ("60", "1.5", "1", "true", "off"); a list as
    # comma-separated names.
    given: dict[str, Any] = {
        field: environ[setting_name(field)].strip()
        for field in _FLAT_FIELDS
        if environ.get(setting_name(field), "").strip()
    }
    classes = given.pop("provider_classes", None)
    try:
        config = parse_config(load_from_environment(dict(environ)))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (fix it, or unset NOTIFIER_CONFIG / NOTIFIER_CONFIG_FILE for the defaults)") from None
    try:
        flat = NotifierSettings.model_validate_strings(given)
        if classes is not None:
            listed = [name.strip() for name in classes.split(",") if name.strip()]
            flat = NotifierSettings.model_validate({**flat.model_dump(), "provider_classes": tuple(listed)})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "")) from None
    return ServiceSettings.model_validate({**flat.model_dump(), "config": config})


@lru_cache(maxsize=16)
def _parse_config(serialized: str) -> NotifierConfig:
    raw: dict[str, Any] = json.loads(serialized)
    return parse_config(raw)


# The NOTIFIER dict last read (a deep copy, so that a change in place is seen too) and what it gave.
_LAST_CONFIG: list[tuple[dict[str, Any], NotifierConfig]] = []


def get_config() -> NotifierConfig:
    """The NOTIFIER dict, validated (settings.NOTIFIER as it is now). Compared with the last one read before it is
    serialized and looked up: delivery reads it for every message (breaker, amounts), where that costs ~15 us."""
    raw = getattr(settings, "NOTIFIER", None) or {}
    if _LAST_CONFIG and _LAST_CONFIG[0][0] == raw:
        return _LAST_CONFIG[0][1]
    config = _parse_config(json.dumps(raw, sort_keys=True, default=str))
    _LAST_CONFIG[:] = [(copy.deepcopy(raw), config)]
    return config


_read_values = operator.attrgetter(*(setting_name(field) for field in _FLAT_FIELDS))
# The values last validated (lists copied, so that an in-place change is seen too) and what they gave.
_VALIDATED: list[tuple[tuple[object, ...], NotifierSettings]] = []


def _copied(values: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(list(value) if isinstance(value, list) else value for value in values)


def get_settings() -> NotifierSettings:
    """Every NOTIFIER_* setting as it is now (however it was changed), validated. Validated again only when a value
    differs from the last ones: it is read on hot paths (one phone of a million), where this costs a microsecond."""
    # From the settings object behind the lazy proxy (where the proxy's own writes go, and override_settings
    # swaps in its holder): attrgetter in C instead of the proxy's Python __getattribute__ for each of the names.
    wrapped = getattr(settings, "_wrapped", empty)
    if wrapped is empty:
        _ = settings.DEBUG  # the proxy sets itself up on its first read
        wrapped = getattr(settings, "_wrapped", empty)
    values: tuple[object, ...] = _read_values(wrapped)
    if _VALIDATED and _VALIDATED[0][0] == values:
        return _VALIDATED[0][1]
    # A list in settings (as Django's are), a tuple here.
    raw = {
        field: tuple(value) if isinstance(value, list) else value
        for field, value in zip(_FLAT_FIELDS, values, strict=True)
    }
    try:
        current = NotifierSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "settings.")) from None
    _VALIDATED[:] = [(_copied(values), current)]
    return current
