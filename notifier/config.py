"""The NOTIFIER settings dict: seed-compatible keys, their defaults, and strict validation.

Validated once when settings load, so a typo or a wrong type stops the process with a message naming the key
instead of surfacing as a silent default at 8 a.m. on a Monday.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from notifier.types import BY_SLUG, NOTIFICATION_TYPES, REGISTRY


class ConfigError(ValueError):
    """A NOTIFIER config value is unknown, missing or of the wrong type; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# The seed's `providers` defaults. Each entry is validated by its provider class (notifier.providers) when the
# app starts, so a provider's config schema lives in one place, next to the code that uses it.
SEED_PROVIDERS: dict[str, dict[str, Any]] = {
    "eGASMSGateway": {
        "GateUrl": "http://127.0.0.1:8000",
        "SmsResource": "/api/policy_notification/test_sms/",
        "PrivateKey": "",
        "UserId": "",
        "SenderId": "",
        "ServiceId": "",
        "RequestType": "",
        "HeaderKeys": "X-Auth-Request-Hash,X-Auth-Request-Id,X-Auth-Request-Type",
        "HeaderValues": "PrivateKey,UserId,RequestType",
    },
    "TextNotificationProvider": {"DestinationFolder": "sent_notification"},
}


_DEFAULT_DELAYS: dict[str, int | None] = {entry.slug: entry.default_max_delay_days for entry in REGISTRY}


def _per_type(value: object, defaults: Mapping[str, object]) -> object:
    """A per-type mapping (one key per registry slug) with the defaults filled in; an unknown key names itself.
    Anything but a dict is left to the field's own (strict) validation."""
    if not isinstance(value, dict):
        return value
    for key in value:
        if key not in BY_SLUG:
            raise PydanticCustomError("unknown_key", "unknown key", {"key": key})
    return {slug: value.get(slug, default) for slug, default in defaults.items()}


class CircuitBreakerConfig(_Strict):
    failure_threshold: int = Field(default=5, ge=1)
    window_seconds: int = Field(default=60, ge=1)
    cooldown_seconds: int = Field(default=30, ge=1)


_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class QuietHours(_Strict):
    """Local times (TIME_ZONE) between which nothing is sent; start after end means overnight (20:00-08:00)."""

    start: str = Field(default="20:00", pattern=_CLOCK)
    end: str = Field(default="08:00", pattern=_CLOCK)
    # Messages held by the quiet hours go out over this many minutes after `end`, each at a fixed offset of its own,
    # so the morning is no burst beyond the rate limit.
    spread_minutes: int = Field(default=60, ge=0, le=720)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours: start and end are equal (set quiet_hours to null to send at any hour)")
        return self


class NotifierConfig(_Strict):
    providers: dict[str, dict[str, Any]] = Field(default_factory=lambda: copy.deepcopy(SEED_PROVIDERS))
    # One boolean per type (default false, the seed's): is the type sent at all.
    eligibleNotificationTypes: dict[str, bool] = Field(default_factory=lambda: dict.fromkeys(NOTIFICATION_TYPES, False))
    family_policy_notification_report_perms: list[str] = Field(default_factory=lambda: ["131224"])
    trigger_time_interval_hours: int = Field(default=4, ge=1, le=24)
    trigger_first_call_hour: int = Field(default=8, ge=0, le=23)
    trigger_last_call_hour: int = Field(default=20, ge=0, le=23)
    reminder_before_expiry_days: int = Field(default=5, ge=1)
    reminder_after_expiry_days: int = Field(default=5, ge=1)
    # Per type, how many days after its event date a candidate may still be sent (SPEC §4); None: the type's
    # default (notifier.types), need_for_renewal's being reminder_before_expiry_days - 1.
    max_delay_days: dict[str, int | None] = Field(default_factory=lambda: dict(_DEFAULT_DELAYS))
    max_attempts: int = Field(default=5, ge=1)
    rate_limit_per_second: float = Field(default=10.0, gt=0)
    http_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    http_read_timeout_seconds: float = Field(default=15.0, gt=0)
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    quiet_hours: QuietHours | None = QuietHours()
    # An inbound SMS whose whole text (any case, surrounding spaces ignored) is one of these withdraws consent.
    stop_keywords: list[str] = Field(default_factory=lambda: ["STOP", "ACHA", "ARRET", "ARRÊT"], min_length=1)
    # Optional reply to a STOP, per language code (the family's consent language, else "en").
    stop_confirmation: dict[str, str] = Field(default_factory=dict)
    # {AmountToBePaid}: currency written after the amount (e.g. "TZS"), and decimals shown.
    currency: str = Field(default="TZS", max_length=8)
    currency_decimals: int = Field(default=0, ge=0, le=3)
    # openIMIS CoreConfig.age_of_majority: members this old or older pay the adult premium.
    age_of_majority: int = Field(default=18, ge=1, le=30)

    @field_validator("eligibleNotificationTypes", mode="before")
    @classmethod
    def _every_type_enabled_or_not(cls, value: object) -> object:
        return _per_type(value, dict.fromkeys(NOTIFICATION_TYPES, False))

    @field_validator("max_delay_days", mode="before")
    @classmethod
    def _every_type_delay(cls, value: object) -> object:
        return _per_type(value, _DEFAULT_DELAYS)

    @field_validator("max_delay_days")
    @classmethod
    def _delays_not_negative(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        for slug, days in value.items():
            if days is not None and days < 0:
                raise PydanticCustomError("negative_delay", "{key}: must be 0 or more", {"key": slug})
        return value

    @model_validator(mode="after")
    def _hours_in_order(self) -> NotifierConfig:
        if self.trigger_first_call_hour > self.trigger_last_call_hour:
            raise ValueError("trigger_first_call_hour must not be after trigger_last_call_hour")
        return self

    def max_delay(self, notification_type: str) -> int:
        value = self.max_delay_days[notification_type]
        if value is None:
            value = BY_SLUG[notification_type].default_max_delay_days
        if value is None:  # need_for_renewal stops the day before expiry, when expiration takes over
            return max(self.reminder_before_expiry_days - 1, 0)
        return value

    def is_enabled(self, notification_type: str) -> bool:
        return self.eligibleNotificationTypes[notification_type]

    def enabled_types(self) -> list[str]:
        """The enabled types in registry order: what the dispatcher detects and the dashboard shows."""
        return [slug for slug in NOTIFICATION_TYPES if self.eligibleNotificationTypes[slug]]

    def expiry_offset(self, notification_type: str) -> int:
        """Event date minus ExpiryDate in days, for a type whose event is its expiry (SPEC §4)."""
        entry = BY_SLUG[notification_type]
        if not entry.expiry_offset_key:
            return 0
        days: int = getattr(self, entry.expiry_offset_key)
        return entry.expiry_offset_sign * days


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(str(item) for item in error["loc"]) or "(root)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        if error["type"] == "unknown_key":
            key = f"{key}.{error.get('ctx', {}).get('key')}"
        parts.append(f"'{key}': {message}")
    return "; ".join(parts)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# Keys of the upstream module's config (its openIMIS fork) that say what one of ours says: how many days after
# activation / renewal the message may still go out. Accepted so that an upstream config starts here unchanged;
# an explicit `max_delay_days` entry wins.
UPSTREAM_ALIASES: dict[str, str] = {
    "policy_activation_relevance_maximum_days_timedelta": "activation_of_policy",
    "policy_renewal_relevance_maximum_days_timedelta": "renewal_of_policy",
}


def _apply_upstream_aliases(raw: dict[str, Any]) -> dict[str, Any]:
    if not any(key in raw for key in UPSTREAM_ALIASES):
        return raw
    raw = dict(raw)
    explicit = raw.get("max_delay_days")
    delays = dict(explicit) if isinstance(explicit, dict) else {}
    for key, notification_type in UPSTREAM_ALIASES.items():
        if key in raw:
            value = raw.pop(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"NOTIFIER config: '{key}': expected a whole number of days >= 0, got {value!r}")
            delays.setdefault(notification_type, value)
    if explicit is None or isinstance(explicit, dict):
        raw["max_delay_days"] = delays
    return raw


def parse_config(raw: dict[str, Any] | None = None) -> NotifierConfig:
    """Validate a NOTIFIER dict (partial: missing keys take their defaults). Raises ConfigError naming the key."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("NOTIFIER config must be a JSON object")
    raw = _apply_upstream_aliases(raw)
    defaults = NotifierConfig().model_dump()
    # Provider entries are merged per provider so that overriding one key keeps the others' defaults.
    merged = _deep_merge(defaults, raw)
    try:
        return NotifierConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"NOTIFIER config: {_describe(exc)}") from None


def load_from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """NOTIFIER overrides from NOTIFIER_CONFIG (a JSON object) or NOTIFIER_CONFIG_FILE (a JSON file)."""
    environ = dict(os.environ) if environ is None else environ
    text = environ.get("NOTIFIER_CONFIG", "")
    source = "NOTIFIER_CONFIG"
    path = environ.get("NOTIFIER_CONFIG_FILE", "")
    if path:
        source = f"NOTIFIER_CONFIG_FILE ({path})"
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: must be a JSON object")
    return value
