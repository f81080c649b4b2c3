"""A generic JSON-over-HTTP gateway, so a scheme with another SMS provider configures it instead of writing code.

The body is a JSON template whose string values may hold placeholders ({recipient}, {recipient_digits}, {text},
{reference}, {token}); they are filled in the parsed structure, so message text never breaks the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from notifier.providers.base import Provider, ProviderConfig
from notifier.providers.http_answers import check_url, read_answer
from notifier.providers.templating import check_placeholders, fill

PLACEHOLDERS = frozenset({"recipient", "recipient_digits", "text", "reference", "token"})


class HttpJsonConfig(ProviderConfig):
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=lambda: {"Content-Type": "application/json"})
    body_template: dict[str, Any] = Field(default_factory=lambda: {"to": "{recipient}", "text": "{text}"})
    token: str = ""
    success_status: list[int] = Field(default_factory=lambda: [200, 201, 202])
    success_field: str = ""
    success_value: str | int | bool | None = None
    error_field: str = "error"
    reference_field: str = ""

    secret_fields: ClassVar[tuple[str, ...]] = ("token",)
    address_fields: ClassVar[tuple[str, ...]] = ("url",)

    @model_validator(mode="after")
    def _check(self) -> HttpJsonConfig:
        check_url(self.url, "url")
        check_placeholders(self.headers, "headers", PLACEHOLDERS)
        check_placeholders(self.body_template, "body_template", PLACEHOLDERS)
        if not self.success_status or any(not 200 <= code < 300 for code in self.success_status):
            raise ValueError("success_status: list of 2xx codes expected")
        return self


class HttpJsonProvider(Provider):
    slug = "HttpJsonProvider"
    label = "Generic JSON over HTTP"
    config_class = HttpJsonConfig

    def send(self, recipient: str, text: str, reference: str, *, metadata: Mapping[str, str] | None = None) -> str:
        config = self.config_as(HttpJsonConfig)
        values = {
            "recipient": recipient,
            "recipient_digits": recipient.lstrip("+"),
            "text": text,
            "reference": reference,
            "token": config.token,
        }
        headers = {name: value.format(**values) for name, value in config.headers.items()}
        body = json.dumps(fill(config.body_template, values)).encode("utf-8")
        response = self.request(config.method, config.url, body=body, headers=headers)
        return read_answer(
            response,
            reference,
            success_status=config.success_status,
            json_required=bool(config.success_field or config.reference_field),
            error_field=config.error_field,
            success_field=config.success_field,
            success_values=() if config.success_value is None else (config.success_value,),
            reference_field=config.reference_field,
        )
