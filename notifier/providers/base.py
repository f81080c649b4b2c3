"""What every SMS provider is: a slug, a typed config, and `send()` returning a reference or saying how it failed.

The three failure kinds drive delivery: a transient error may succeed later on the same provider, a permanent one
never will (next provider, no retry there), and an unknown outcome means the request may have reached the gateway,
so sending again could text the family twice.
"""

from __future__ import annotations

import base64
import json
import netrc
import os
import threading
import time
import urllib.request
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import urllib3
from pydantic import BaseModel, ConfigDict, ValidationError

from notifier.providers import http_client
from notifier.providers.callbacks import (
    CallbackAnswer,
    CallbackError,
    CallbackKind,
    CallbackRequest,
    InboundMessage,
    Receipt,
)
from notifier.providers.one_write import ONE_WRITE_POOLS

MASK = "********"
_C = TypeVar("_C", bound="ProviderConfig")
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

    def config_as(self, kind: type[_C]) -> _C:
        """This provider's config as its own config class (the one `config_class` validated)."""
        config = self.config
        assert isinstance(config, kind)
        return config

    def http_session(self) -> PooledSession | None:
        return pooled_session(self.session_key) if self.session_key is not None else None

    def request(self, method: str, url: str, *, body: bytes | None, headers: Mapping[str, str]) -> HttpResponse:
        """`http_request` with this provider's timeouts and keep-alive session."""
        return http_request(
            method, url, body=body, headers=headers, timeouts=self.timeouts, session=self.http_session()
        )

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

    def callback_answer(self, kind: CallbackKind) -> CallbackAnswer | None:
        """The answer this gateway expects to a handled callback; None: our JSON summary."""
        return None

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


@dataclass(frozen=True)
class HttpResponse:
    """A gateway's answer, read whole: status, headers and body."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("Content-Type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


def body_excerpt(response: HttpResponse) -> str:
    text = response.text or ""
    return text[:_BODY_EXCERPT] + ("…" if len(text) > _BODY_EXCERPT else "")


# A pooled connection idle for longer than this is closed rather than reused: gateways drop idle keep-alive
# connections after a few seconds (Apache 5 s), and a request written into a connection the server is closing at
# that moment fails after sending — an unknown outcome, which is never resent. Within a chunk sends follow each
# other in milliseconds, so reuse still applies where it matters.
KEEPALIVE_IDLE_SECONDS = 2.0
USER_AGENT = "policy-notifier"


def _ca_bundle() -> str | None:
    """The CA bundle requests would use: REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, else certifi's, else the system's."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with requests
        return None
    return str(certifi.where())


class PooledSession:
    """Keep-alive HTTP connections for one provider account, in one thread of one process.

    What the environment says about a URL (a proxy from the *_PROXY variables unless NO_PROXY exempts the host,
    ~/.netrc credentials, the CA bundle) is read once per URL, as requests would read it on every call. Calls
    straight to the gateway go through notifier.providers.http_client (one kept-alive connection per origin, the
    request in one write); calls through a proxy through urllib3's ProxyManager.
    """

    def __init__(self) -> None:
        self._ca = _ca_bundle()
        self._direct = http_client.Client(self._ca)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._routes: dict[str, tuple[urllib3.ProxyManager | None, dict[str, str]]] = {}

    def _route(self, url: str) -> tuple[urllib3.ProxyManager | None, dict[str, str]]:
        """The proxy a URL's calls go through (None: straight to the host), and the headers the environment adds."""
        found = self._routes.get(url)
        if found is not None:
            return found
        parts = urlsplit(url)
        extra: dict[str, str] = {}
        auth = _netrc_auth(url)
        if auth is not None:
            extra["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        manager: urllib3.ProxyManager | None = None
        proxy = urllib.request.getproxies().get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
            if proxy not in self._proxied:
                self._proxied[proxy] = urllib3.ProxyManager(
                    proxy, num_pools=4, maxsize=1, retries=False, ca_certs=self._ca
                )
                self._proxied[proxy].pool_classes_by_scheme = ONE_WRITE_POOLS
            manager = self._proxied[proxy]
        self._routes[url] = (manager, extra)
        return manager, extra

    def request(
        self, method: str, url: str, *, body: bytes | None, headers: Mapping[str, str], timeouts: Timeouts
    ) -> HttpResponse:
        manager, extra = self._route(url)
        sent = {"User-Agent": USER_AGENT, "Accept": "*/*", **extra, **headers}
        if manager is None:
            direct = self._direct.request(
                method, url, body=body, headers=sent, connect_timeout=timeouts.connect, read_timeout=timeouts.read
            )
            return HttpResponse(direct.status, direct.body, direct.headers)
        timeout = urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)
        options: dict[str, Any] = {"retries": False, "redirect": False, "preload_content": True}
        answer = manager.urlopen(method, url, body=body, headers=sent, timeout=timeout, **options)
        return HttpResponse(answer.status, answer.data, answer.headers)

    def close(self) -> None:
        self._direct.close()
        for manager in self._proxied.values():
            manager.clear()


def _netrc_auth(url: str) -> tuple[str, str] | None:
    host = urlsplit(url).hostname
    if not host:
        return None
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    if not os.path.exists(path):
        return None
    try:
        found = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return None
    if not found:
        return None
    return found[0] or "", found[2] or ""


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

    Sessions are never shared between threads nor across fork.
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
) -> HttpResponse:
    """One HTTP call with connect and read timeouts, its network failures mapped onto the three error kinds:
    nothing could have been sent (refused, unreachable, connect timeout, a bad URL) → transient or permanent;
    the request may have left (read timeout, connection dropped while sending or reading) → unknown.

    With a session the connection may be a kept-alive one; otherwise a new connection serves this call only.
    """
    own = session is None
    client = PooledSession() if session is None else session
    try:
        return client.request(method, url, body=body, headers=headers, timeouts=timeouts)
    except http_client.ConnectTimedOut as exc:
        raise TransientError(f"connect timeout after {timeouts.connect}s: {exc}") from None
    except http_client.CannotConnect as exc:  # refused, unreachable, no such host, a failed TLS handshake
        raise TransientError(f"cannot connect: {exc}") from None
    except http_client.NoAnswer:
        raise UnknownOutcomeError(f"no answer within the read timeout of {timeouts.read}s") from None
    except http_client.Dropped as exc:
        raise UnknownOutcomeError(f"connection dropped after the request was sent: {exc}") from None
    except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable, no such host: nothing was sent
        raise TransientError(f"cannot connect: {exc}") from None
    except urllib3.exceptions.ConnectTimeoutError as exc:
        raise TransientError(f"connect timeout after {timeouts.connect}s: {exc}") from None
    except urllib3.exceptions.ReadTimeoutError:
        raise UnknownOutcomeError(f"no answer within the read timeout of {timeouts.read}s") from None
    except urllib3.exceptions.ProxyError as exc:  # the proxy could not be reached or refused the tunnel
        raise TransientError(f"cannot connect through the proxy: {exc}") from None
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError, urllib3.exceptions.DecodeError) as exc:
        raise UnknownOutcomeError(f"connection dropped after the request was sent: {exc}") from None
    except (urllib3.exceptions.HTTPError, ValueError) as exc:
        raise PermanentError(f"request refused before sending: {exc}") from None
    finally:
        if own:
            client.close()


def classify_status(response: HttpResponse) -> None:
    """Raise for a non-2xx answer: 408, 425, 429 and 5xx are transient, any other 4xx/3xx permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"HTTP {status}: {body_excerpt(response)}"
    if status in {408, 425, 429} or status >= 500:
        raise TransientError(message, http_status=status)
    raise PermanentError(message, http_status=status)
