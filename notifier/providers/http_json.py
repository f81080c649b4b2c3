"""A generic JSON-over-HTTP gateway, so a scheme with another SMS provider configures it instead of writing code.

The body is a JSON template whose string values may hold placeholders ({recipient}, {recipient_digits}, {text},
{reference}, {token}); they are filled in the parsed structure, so message text never breaks the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from notifier.providers.base import (
    PermanentError,
    Provider,
    ProviderConfig,
    UnknownOutcomeError,
    body_excerpt,
    classify_status,
    http_request,
    http_url_problem,
)
from notifier.providers.callbacks import lookup
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
        problem = http_url_problem(self.url)
        if problem is not None:
            raise ValueError(f"url: {problem}")
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
        config = self.config
        assert isinstance(config, HttpJsonConfig)
        values = {
            "recipient": recipient,
            "recipient_digits": recipient.lstrip("+"),
            "text": text,
            "reference": reference,
            "token": config.token,
        }
        headers = {name: value.format(**values) for name, value in config.headers.items()}
        body = json.dumps(fill(config.body_template, values)).encode("utf-8")
        response = http_request(
            config.method, config.url, body=body, headers=headers, timeouts=self.timeouts, session=self.http_session()
        )
        classify_status(response)
        if response.status_code not in config.success_status:
            raise UnknownOutcomeError(f"unexpected HTTP {response.status_code}", http_status=response.status_code)
        needs_json = bool(config.success_field or config.reference_field)
        try:
            answer: Any = response.json() if response.content else None
        except ValueError:
            if needs_json:
                raise UnknownOutcomeError(
                    f"HTTP {response.status_code} without a JSON body: {body_excerpt(response)}",
                    http_status=response.status_code,
                ) from None
            answer = None
        if config.error_field and lookup(answer, config.error_field):
            raise PermanentError(f"gateway error: {body_excerpt(response)}", http_status=response.status_code)
        if config.success_field:
            outcome = lookup(answer, config.success_field)
            ok = bool(outcome) if config.success_value is None else outcome == config.success_value
            if not ok:
                raise PermanentError(
                    f"gateway did not confirm ({config.success_field}={outcome!r})", http_status=response.status_code
                )
        if config.reference_field:
            found = lookup(answer, config.reference_field)
            if found not in (None, ""):
                return str(found)
        return reference
