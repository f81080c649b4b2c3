"""What every SMS provider is: a slug, a typed config, and `send()` returning a reference or saying how it failed.

The three failure kinds drive delivery: a transient error may succeed later on the same provider, a permanent one
never will (next provider, no retry there), and an unknown outcome means the request may have reached the gateway,
so sending again could text the family twice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from notifier.providers.callbacks import CallbackError, CallbackRequest, InboundMessage, Receipt

MASK = "********"
_BODY_EXCERPT = 300


class ProviderError(Exception):
    """A send failed. `http_status` is the gateway's answer when there was one."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class TransientError(ProviderError):
    """Not sent; trying the same provider later may work (5xx, 429, refused connection, connect timeout)."""


class PermanentError(ProviderError):
    """Not sent and never will be by this provider (4xx, a gateway `error`, an invalid number)."""


class UnknownOutcomeError(ProviderError):
    """The request went out but no usable answer came back: the SMS may or may not have been sent."""


class ProviderConfigError(ValueError):
    """A provider config is invalid; the message names the field."""


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot be called (scheme other than http/https, no host, spaces or control characters), or None."""
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"not a usable URL ({exc})"
    if parts.scheme not in {"http", "https"}:
        return "must start with http:// or https://"
    if not parts.hostname:
        return "must name a host, e.g. https://sms.example.org"
    return None


class ProviderConfig(BaseModel):
    """Base for provider configs: strict types, unknown keys refused. Subclasses list their secret fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    secret_fields: ClassVar[tuple[str, ...]] = ()
    # Where the secrets are sent: changing one of these while a secret stays masked is refused (the stored secret
    # would go to the new host), so a person re-enters the secrets with the new address.
    address_fields: ClassVar[tuple[str, ...]] = ()

    def secret_values(self) -> list[str]:
        return [str(getattr(self, name)) for name in self.secret_fields if getattr(self, name)]


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        if error["type"] == "value_error":  # our own validators already start with the field name
            message = message.removeprefix("Value error, ")
        field = ".".join(str(item) for item in error["loc"])
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


class Provider:
    """A gateway kind. Subclasses set `slug`, `config_class` and implement `send`."""

    slug: ClassVar[str]
    label: ClassVar[str] = ""
    config_class: ClassVar[type[ProviderConfig]] = ProviderConfig
    # False for providers that only record a message (a file): they never stand in for a failed SMS gateway.
    delivers_sms: ClassVar[bool] = True
    # This account's delivery-receipt URL (set by account_provider when NOTIFIER_PUBLIC_URL is known), for
    # gateways that take a callback address with each message.
    receipt_url: str = ""

    def __init__(self, config: ProviderConfig, timeouts: Timeouts, *, session_key: Hashable | None = None) -> None:
        self.config = config
        self.timeouts = timeouts
        # With a key, HTTP calls reuse this process's and thread's keep-alive connections for that key (an account).
        self.session_key = session_key

    def http_session(self) -> PooledSession | None:
        return pooled_session(self.session_key) if self.session_key is not None else None

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any]) -> ProviderConfig:
        """Validated config or ProviderConfigError naming the field(s)."""
        if not isinstance(raw, Mapping):
            raise ProviderConfigError(f"{cls.slug}: config must be a JSON object")
        try:
            return cls.config_class.model_validate(dict(raw))
        except ValidationError as exc:
            raise ProviderConfigError(describe_validation_error(exc)) from None

    @classmethod
    def masked(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The config as shown back to a person: every non-empty secret replaced by MASK."""
        shown = dict(raw)
        for name in cls.config_class.secret_fields:
            if shown.get(name):
                shown[name] = MASK
        return shown

    @classmethod
    def unmask(cls, submitted: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
        """A submitted config where a secret still reads MASK keeps the stored value (the person did not change it)."""
        merged = dict(submitted)
        for name in cls.config_class.secret_fields:
            if merged.get(name) == MASK:
                merged[name] = stored.get(name, "")
        return merged

    def secret_values(self) -> list[str]:
        return self.config.secret_values()

    # Callbacks (notifier.callbacks): providers whose gateway reports deliveries or forwards replies override these.
    def verify_callback(self, request: CallbackRequest) -> bool:
        """True when the callback carries the gateway's valid signature, or the gateway signs nothing (the account's
        unguessable URL token is then the only check)."""
        return True

    def parse_receipts(self, request: CallbackRequest) -> list[Receipt]:
        """The delivery receipts in a callback; CallbackError when it cannot be read."""
        raise CallbackError(f"{self.slug} gateways send no delivery receipts")

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        """The messages families sent to us in a callback; CallbackError when it cannot be read."""
        raise CallbackError(f"{self.slug} gateways forward no inbound messages")

    def send(self, recipient: str, text: str, reference: str, *, metadata: Mapping[str, str] | None = None) -> str:
        """Send `text` to `recipient` (E.164). Returns the provider's reference for the message.

        `reference` identifies the outbox row (stable across retries); `metadata` carries language and type for
        providers that record them. Raises TransientError, PermanentError or UnknownOutcomeError.
        """
        raise NotImplementedError


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def body_excerpt(response: requests.Response) -> str:
    text = response.text or ""
    return text[:_BODY_EXCERPT] + ("…" if len(text) > _BODY_EXCERPT else "")


def _sent_before_failure(exc: requests.ConnectionError) -> bool:
    """Did the request leave before the connection failed? A refused or unreachable connect means it did not."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        name = type(current).__name__
        if name in {"NewConnectionError", "ConnectTimeoutError", "NameResolutionError", "ConnectionRefusedError"}:
            return False
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return True


# A pooled connection idle for longer than this is closed rather than reused: gateways drop idle keep-alive
# connections after a few seconds (Apache 5 s), and a request written into a connection the server is closing at
# that moment fails after sending — an unknown outcome, which is never resent. Within a chunk sends follow each
# other in milliseconds, so reuse still applies where it matters.
KEEPALIVE_IDLE_SECONDS = 2.0


class PooledSession:
    """A requests.Session kept for its connections. What requests would read from the environment on every call
    (proxy variables, NO_PROXY, CA bundle variables, ~/.netrc) is read once per URL instead: same outcome, without
    scanning os.environ per message (a third of the HTTP call's CPU in the delivery profile)."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self._environment: dict[str, dict[str, Any]] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        environment = self._environment.get(url)
        if environment is None:
            probe = requests.Session()  # trust_env on: exactly what requests.request() would use for this URL
            merged = probe.merge_environment_settings(url, {}, None, None, None)
            environment = {**merged, "auth": requests.utils.get_netrc_auth(url)}
            probe.close()
            self._environment[url] = environment
        return self.session.request(method, url, **environment, **kwargs)

    def close(self) -> None:
        self.session.close()


class _Sessions(threading.local):
    def __init__(self) -> None:
        self.by_key: dict[Hashable, tuple[PooledSession, float]] = {}


_sessions = _Sessions()


def _forget_sessions_after_fork() -> None:
    # A forked worker (Celery prefork) must never share the parent's sockets: start with no session at all.
    global _sessions
    _sessions = _Sessions()


os.register_at_fork(after_in_child=_forget_sessions_after_fork)


def pooled_session(key: Hashable) -> PooledSession:
    """This thread's session for `key` (keep-alive connections), renewed when it sat idle too long.

    Sessions are never shared between threads (requests does not promise thread safety) nor across fork.
    """
    now = time.monotonic()
    found = _sessions.by_key.get(key)
    if found is not None and now - found[1] > KEEPALIVE_IDLE_SECONDS:
        found[0].close()
        found = None
    session = found[0] if found is not None else PooledSession()
    _sessions.by_key[key] = (session, now)
    return session


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    timeouts: Timeouts,
    session: PooledSession | None = None,
) -> requests.Response:
    """One HTTP call with connect and read timeouts, its network failures mapped onto the three error kinds.

    With a session the connection may be a kept-alive one; otherwise a new connection serves this call only.
    """
    try:
        if session is None:
            return requests.request(
                method, url, data=body, headers=dict(headers), timeout=timeouts.as_requests(), allow_redirects=False
            )
        return session.request(
            method, url, data=body, headers=dict(headers), timeout=timeouts.as_requests(), allow_redirects=False
        )
    except requests.ConnectTimeout as exc:
        raise TransientError(f"connect timeout after {timeouts.connect}s: {exc}") from None
    except requests.ReadTimeout:
        raise UnknownOutcomeError(f"no answer within the read timeout of {timeouts.read}s") from None
    except requests.ConnectionError as exc:
        if _sent_before_failure(exc):
            raise UnknownOutcomeError(f"connection dropped after the request was sent: {exc}") from None
        raise TransientError(f"cannot connect: {exc}") from None
    except requests.RequestException as exc:
        raise PermanentError(f"request refused before sending: {exc}") from None


def classify_status(response: requests.Response) -> None:
    """Raise for a non-2xx answer: 408, 425, 429 and 5xx are transient, any other 4xx/3xx permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"HTTP {status}: {body_excerpt(response)}"
    if status in {408, 425, 429} or status >= 500:
        raise TransientError(message, http_status=status)
    raise PermanentError(message, http_status=status)
