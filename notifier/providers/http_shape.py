"""The general HTTP request an SMS API is called with: GET with query parameters, POST/PUT with a form or JSON body,
basic auth or a token header, success read from the HTTP status and/or a field of the JSON answer. Templates are
filled in parsed structures (placeholders `{recipient}`, `{recipient_digits}`, `{text}`, `{reference}`, `{sender}`,
`{username}`, `{token}`, `{receipt_url}`), so message text never breaks a body. The general provider and the
vendor presets (`http_generic.py`) send through it."""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import Field, model_validator

from notifier.providers.base import Provider, ProviderConfig
from notifier.providers.http_answers import Scalar, check_url, read_answer
from notifier.providers.templating import check_placeholders, fill

PLACEHOLDERS = frozenset(
    {"recipient", "recipient_digits", "text", "reference", "sender", "username", "token", "receipt_url"}
)


class HttpConfig(ProviderConfig):
    url: str
    method: Literal["GET", "POST", "PUT"] = "POST"
    query: dict[str, str] = Field(default_factory=dict)
    body_format: Literal["none", "form", "json"] = "json"
    body: dict[str, Any] = Field(default_factory=lambda: {"to": "{recipient}", "text": "{text}"})
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Literal["none", "basic", "header"] = "none"
    username: str = ""
    password: str = ""
    token: str = ""
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "
    sender: str = ""
    success_status: list[int] = Field(default_factory=lambda: [200, 201, 202])
    success_field: str = ""
    success_values: list[Scalar] = Field(default_factory=list)
    error_field: str = ""
    reason_field: str = ""
    reference_field: str = ""
    # Receipts and inbound messages for a gateway without a preset: field names of its callback (form or JSON).
    receipt_id_field: str = ""
    receipt_reference_field: str = ""
    receipt_status_field: str = ""
    receipt_reason_field: str = ""
    delivered_values: list[str] = Field(default_factory=list)
    undelivered_values: list[str] = Field(default_factory=list)
    inbound_from_field: str = "from"
    inbound_text_field: str = "text"

    secret_fields: ClassVar[tuple[str, ...]] = ("password", "token")
    address_fields: ClassVar[tuple[str, ...]] = ("url",)

    @model_validator(mode="after")
    def _check(self) -> HttpConfig:
        check_url(self.url, "url")
        for value, where in ((self.url, "url"), (self.query, "query"), (self.headers, "headers"), (self.body, "body")):
            check_placeholders(value, where, PLACEHOLDERS)
        if self.method == "GET" and self.body_format != "none":
            raise ValueError("body_format: a GET request has no body (use 'none' and put the fields in query)")
        if self.method != "GET" and self.body_format == "none" and self.body:
            raise ValueError("body: given, but body_format is 'none'")
        if self.body_format == "form" and any(isinstance(v, dict | list) for v in self.body.values()):
            raise ValueError("body: a form body holds text values only")
        if self.auth == "basic" and not self.username:
            raise ValueError("username: required with auth 'basic'")
        if self.auth == "header" and not self.token:
            raise ValueError("token: required with auth 'header'")
        if not self.success_status or any(not 200 <= code < 300 for code in self.success_status):
            raise ValueError("success_status: list of 2xx codes expected")
        if self.success_values and not self.success_field:
            raise ValueError("success_field: required when success_values are given")
        return self


def http_send(
    provider: Provider, config: HttpConfig, recipient: str, text: str, reference: str, receipt_url: str
) -> str:
    """One message through an HttpConfig; the three error kinds as every provider raises them."""
    values = {
        "recipient": recipient,
        "recipient_digits": recipient.lstrip("+"),
        "text": text,
        "reference": reference,
        "sender": config.sender,
        "username": config.username,
        "token": config.token,
        "receipt_url": receipt_url,
    }
    url = config.url.format(**values)
    if config.query:
        split = urlsplit(url)
        extra = urlencode(fill(config.query, values))
        url = urlunsplit(split._replace(query=f"{split.query}&{extra}" if split.query else extra))
    headers = {"Accept": "application/json"}
    headers.update({name: value.format(**values) for name, value in config.headers.items()})
    body: bytes | None = None
    if config.body_format == "json":
        body = json.dumps(fill(config.body, values)).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif config.body_format == "form":
        # A field whose template filled to nothing (an optional sender, no receipt URL) is left out.
        fields = {key: value for key, value in fill(config.body, values).items() if value != ""}
        body = urlencode(fields).encode("ascii")
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if config.auth == "basic":
        pair = f"{config.username}:{config.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif config.auth == "header":
        headers[config.auth_header] = config.auth_prefix + config.token
    response = provider.request(config.method, url, body=body, headers=headers)
    return read_answer(
        response,
        reference,
        success_status=config.success_status,
        json_required=bool(config.success_field or config.reference_field or config.error_field),
        error_field=config.error_field,
        success_field=config.success_field,
        success_values=config.success_values,
        reason_field=config.reason_field,
        reference_field=config.reference_field,
    )
