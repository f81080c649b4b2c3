"""Tanzania e-Government Agency SMS gateway (SPEC §7), byte-compatible with the upstream protocol."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar

from pydantic import model_validator

from notifier.providers.base import (
    PermanentError,
    Provider,
    ProviderConfig,
    UnknownOutcomeError,
    body_excerpt,
    classify_status,
)
from notifier.providers.http_answers import check_url, json_answer

EAST_AFRICA = timezone(timedelta(hours=3))

# What a HeaderValues entry may name (any case). Upstream's gateway class knows exactly three names: "HashMessage1"
# (the request hash), "UserId" and "RequestType", so every config that works there says "HashMessage1,UserId,
# RequestType" and must work here unchanged. The seed's documentation ships "PrivateKey,UserId,RequestType", which
# upstream cannot send (no value for "PrivateKey"); the first header carries the request hash (never the key
# itself), so "PrivateKey" is read as "the hash made with the private key". "Hash" is our own short name.
_HEADER_VALUE_SOURCES = {
    "hashmessage1": "hash",
    "privatekey": "hash",
    "hash": "hash",
    "userid": "user_id",
    "requesttype": "request_type",
}


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class EGAConfig(ProviderConfig):
    GateUrl: str = "http://127.0.0.1:8000"
    SmsResource: str = "/api/policy_notification/test_sms/"
    PrivateKey: str = ""
    UserId: str = ""
    SenderId: str = ""
    ServiceId: str = ""
    RequestType: str = ""
    HeaderKeys: str = "X-Auth-Request-Hash,X-Auth-Request-Id,X-Auth-Request-Type"
    HeaderValues: str = "PrivateKey,UserId,RequestType"

    secret_fields: ClassVar[tuple[str, ...]] = ("PrivateKey",)
    address_fields: ClassVar[tuple[str, ...]] = ("GateUrl", "SmsResource")

    @model_validator(mode="after")
    def _headers_pair_up(self) -> EGAConfig:
        check_url(self.GateUrl, "GateUrl")
        check_url(self.url, "SmsResource")
        keys, values = _split(self.HeaderKeys), _split(self.HeaderValues)
        if len(keys) != len(values):
            raise ValueError(f"HeaderValues: {len(values)} values for {len(keys)} HeaderKeys")
        for value in values:
            if value.lower() not in _HEADER_VALUE_SOURCES:
                expected = "HashMessage1 (or PrivateKey, Hash), UserId, RequestType"
                raise ValueError(f"HeaderValues: unknown value {value!r} (expected {expected})")
        return self

    def header_sources(self) -> list[tuple[str, str]]:
        """(header name, 'hash' | 'user_id' | 'request_type') in configured order."""
        return [
            (key, _HEADER_VALUE_SOURCES[value.lower()])
            for key, value in zip(_split(self.HeaderKeys), _split(self.HeaderValues), strict=True)
        ]

    @property
    def url(self) -> str:
        """GateUrl + SmsResource as upstream joins them, with exactly one slash between the two; an empty
        SmsResource leaves GateUrl untouched (a config holding the whole URL in GateUrl)."""
        if not self.SmsResource:
            return self.GateUrl
        return self.GateUrl.rstrip("/") + "/" + self.SmsResource.lstrip("/")


def gateway_time(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(EAST_AFRICA).strftime("%Y-%m-%d %H:%M:%S")


def request_data(config: EGAConfig, recipient: str, text: str, sent_at: str) -> str:
    """The signed `data` string: compact JSON, keys in this order, non-ASCII escaped as \\uXXXX."""
    payload = {
        "message": text,
        "datetime": sent_at,
        "sender_id": config.SenderId,
        "mobile_service_id": config.ServiceId,
        "recipients": recipient.lstrip("+"),
    }
    return json.dumps(payload, separators=(",", ":"))


def request_hash(private_key: str, data: str) -> str:
    digest = hmac.new(private_key.encode("utf-8"), data.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def request_body(data: str, sent_at: str) -> bytes:
    return json.dumps({"data": data, "datetime": sent_at}, separators=(",", ":")).encode("utf-8")


def request_headers(config: EGAConfig, signature: str) -> dict[str, str]:
    values = {"hash": signature, "user_id": config.UserId, "request_type": config.RequestType}
    headers = {"Content-Type": "application/json"}
    for name, source in config.header_sources():
        headers[name] = values[source]
    return headers


class EGASMSGateway(Provider):
    slug = "eGASMSGateway"
    label = "eGA SMS gateway (Tanzania)"
    config_class = EGAConfig

    def send(self, recipient: str, text: str, reference: str, *, metadata: Mapping[str, str] | None = None) -> str:
        config = self.config_as(EGAConfig)
        sent_at = gateway_time()
        data = request_data(config, recipient, text, sent_at)
        headers = request_headers(config, request_hash(config.PrivateKey, data))
        response = self.request("POST", config.url, body=request_body(data, sent_at), headers=headers)
        classify_status(response)
        answer = json_answer(response, required=True, empty_is_none=False)
        if isinstance(answer, dict) and answer.get("error"):
            raise PermanentError(f"gateway error: {body_excerpt(response)}", http_status=response.status_code)
        if response.status_code != 200:
            raise UnknownOutcomeError(f"unexpected HTTP {response.status_code}", http_status=response.status_code)
        if isinstance(answer, dict):
            for key in ("reference", "message_id", "id"):
                if answer.get(key):
                    return str(answer[key])
        return reference
