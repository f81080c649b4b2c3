"""A general HTTP SMS provider, and presets for gateways schemes use (Africa's Talking, Twilio, Infobip).

`HttpProvider` covers the ways SMS APIs are called: GET with query parameters, POST/PUT with a form or JSON body,
basic auth or a token header, success read from the HTTP status and/or a field of the JSON answer. Templates are
filled in parsed structures (placeholders `{recipient}`, `{recipient_digits}`, `{text}`, `{reference}`, `{sender}`,
`{username}`, `{token}`, `{receipt_url}`), so message text never breaks a body.

Each preset is a provider with the vendor's own config words; it maps them onto one `HttpConfig` and parses the
vendor's delivery receipts and inbound messages. Protocol facts come from each vendor's public documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

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
from notifier.providers.callbacks import (
    CallbackError,
    CallbackRequest,
    InboundMessage,
    Receipt,
    ReceiptOutcome,
    lookup,
)
from notifier.providers.templating import check_placeholders, fill

PLACEHOLDERS = frozenset(
    {"recipient", "recipient_digits", "text", "reference", "sender", "username", "token", "receipt_url"}
)
Scalar = str | int | bool


def _same(found: Any, expected: Scalar) -> bool:
    """A JSON value against a configured one: 101 and "101" are the same answer."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return found is expected
    return str(found) == str(expected)


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
        problem = http_url_problem(self.url)
        if problem is not None:
            raise ValueError(f"url: {problem}")
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
    response = http_request(
        config.method, url, body=body, headers=headers, timeouts=provider.timeouts, session=provider.http_session()
    )
    classify_status(response)
    if response.status_code not in config.success_status:
        raise UnknownOutcomeError(f"unexpected HTTP {response.status_code}", http_status=response.status_code)
    needs_json = bool(config.success_field or config.reference_field or config.error_field)
    try:
        answer: Any = response.json() if response.content else None
    except ValueError:
        if needs_json:
            raise UnknownOutcomeError(
                f"HTTP {response.status_code} without a JSON body: {body_excerpt(response)}",
                http_status=response.status_code,
            ) from None
        answer = None
    reason = lookup(answer, config.reason_field) if config.reason_field else None
    if config.error_field and lookup(answer, config.error_field):
        raise PermanentError(f"gateway error: {body_excerpt(response)}", http_status=response.status_code)
    if config.success_field:
        outcome = lookup(answer, config.success_field)
        if config.success_values:
            ok = any(_same(outcome, expected) for expected in config.success_values)
        else:
            ok = bool(outcome)
        if not ok:
            detail = f"{config.success_field}={outcome!r}" + (f", {reason}" if reason else "")
            raise PermanentError(f"gateway refused ({detail})", http_status=response.status_code)
    if config.reference_field:
        found = lookup(answer, config.reference_field)
        if found not in (None, ""):
            return str(found)
    return reference


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class HttpProvider(Provider):
    slug = "HttpProvider"
    label = "General HTTP gateway (GET/POST, form/JSON, basic auth or token)"
    config_class: ClassVar[type[ProviderConfig]] = HttpConfig

    def http_config(self) -> HttpConfig:
        config = self.config
        assert isinstance(config, HttpConfig)
        return config

    def send(self, recipient: str, text: str, reference: str, *, metadata: Mapping[str, str] | None = None) -> str:
        return http_send(self, self.http_config(), recipient, text, reference, self.receipt_url_for(reference))

    def receipt_url_for(self, reference: str) -> str:
        """This account's receipt URL with the message's reference, when the service knows its public address."""
        base = getattr(self, "receipt_url", "")
        return f"{base}?{urlencode({'ref': reference})}" if base else ""

    def parse_receipts(self, request: CallbackRequest) -> list[Receipt]:
        config = self.http_config()
        if not config.receipt_status_field:
            raise CallbackError("receipt_status_field: not configured for this account")
        source: Any = request.json if request.json is not None else dict(request.form)
        status = _text(lookup(source, config.receipt_status_field))
        if not status:
            raise CallbackError(f"{config.receipt_status_field}: missing from the receipt")
        outcome: ReceiptOutcome = "pending"
        if status in config.delivered_values:
            outcome = "delivered"
        elif status in config.undelivered_values:
            outcome = "undelivered"
        return [
            Receipt(
                provider_id=_text(lookup(source, config.receipt_id_field)),
                outcome=outcome,
                status=status,
                reason=_text(lookup(source, config.receipt_reason_field)),
                reference=_text(lookup(source, config.receipt_reference_field)) or request.query.get("ref", ""),
            )
        ]

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        config = self.http_config()
        source: Any = request.json if request.json is not None else dict(request.form)
        sender = _text(lookup(source, config.inbound_from_field))
        if not sender:
            raise CallbackError(f"{config.inbound_from_field}: missing from the inbound message")
        return [InboundMessage(sender=sender, text=_text(lookup(source, config.inbound_text_field)))]


# --- presets ------------------------------------------------------------------------------------------------


class _Preset(HttpProvider):
    """A provider whose HttpConfig is derived from the vendor's own config words."""

    _http_config: HttpConfig | None = None

    def http_config(self) -> HttpConfig:
        cached: HttpConfig | None = getattr(self, "_http_config", None)
        if cached is None:
            cached = HttpConfig.model_validate(self.request_shape())
            self._http_config = cached
        return cached

    def request_shape(self) -> dict[str, Any]:
        raise NotImplementedError


def _https(value: str, field: str) -> None:
    problem = http_url_problem(value)
    if problem is not None:
        raise ValueError(f"{field}: {problem}")


class AfricasTalkingConfig(ProviderConfig):
    username: str
    api_key: str
    sender: str = ""  # an approved sender id or short code; empty: the account default
    base_url: str = "https://api.africastalking.com"  # sandbox: https://api.sandbox.africastalking.com

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    address_fields: ClassVar[tuple[str, ...]] = ("base_url",)

    @model_validator(mode="after")
    def _check(self) -> AfricasTalkingConfig:
        _https(self.base_url, "base_url")
        if not self.username:
            raise ValueError("username: required (use 'sandbox' for the sandbox)")
        if not self.api_key:
            raise ValueError("api_key: required")
        return self


# Recipient status codes of the send answer that mean "taken": 100 Processed, 101 Sent, 102 Queued.
AT_ACCEPTED = [100, 101, 102]
AT_DELIVERED = {"Success"}
AT_UNDELIVERED = {"Failed", "Rejected", "AbsentSubscriber", "Expired"}


class AfricasTalkingProvider(_Preset):
    """POST {base_url}/version1/messaging, form username/to/message[/from], header apiKey; answer JSON
    SMSMessageData.Recipients[] with statusCode and messageId. Receipts and inbound messages are form POSTs to the
    callback URLs set in the Africa's Talking dashboard (no signature: the URL token is the check)."""

    slug = "AfricasTalking"
    label = "Africa's Talking"
    config_class = AfricasTalkingConfig

    def request_shape(self) -> dict[str, Any]:
        config = self.config
        assert isinstance(config, AfricasTalkingConfig)
        return {
            "url": config.base_url.rstrip("/") + "/version1/messaging",
            "method": "POST",
            "body_format": "form",
            "body": {"username": "{username}", "to": "{recipient}", "message": "{text}", "from": "{sender}"},
            "auth": "header",
            "auth_header": "apiKey",
            "auth_prefix": "",
            "token": config.api_key,
            "username": config.username,
            "sender": config.sender,
            "success_status": [200, 201],
            "success_field": "SMSMessageData.Recipients[0].statusCode",
            "success_values": AT_ACCEPTED,
            "reason_field": "SMSMessageData.Recipients[0].status",
            "reference_field": "SMSMessageData.Recipients[0].messageId",
        }

    def parse_receipts(self, request: CallbackRequest) -> list[Receipt]:
        form = request.form
        if not form.get("id"):
            raise CallbackError("id: missing from the delivery report")
        status = form.get("status", "")
        if not status:
            raise CallbackError("status: missing from the delivery report")
        outcome: ReceiptOutcome = "pending"
        if status in AT_DELIVERED:
            outcome = "delivered"
        elif status in AT_UNDELIVERED:
            outcome = "undelivered"
        elif status in {"Sent", "Submitted", "Buffered"}:
            outcome = "accepted"
        return [
            Receipt(
                provider_id=form["id"],
                outcome=outcome,
                status=status,
                reason=form.get("failureReason", ""),
                recipient=form.get("phoneNumber", ""),
            )
        ]

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        form = request.form
        if not form.get("from"):
            raise CallbackError("from: missing from the inbound message")
        return [InboundMessage(sender=form["from"], text=form.get("text", ""), provider_id=form.get("id", ""))]


class TwilioConfig(ProviderConfig):
    account_sid: str
    auth_token: str
    from_number: str = ""
    messaging_service_sid: str = ""
    base_url: str = "https://api.twilio.com"

    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)
    address_fields: ClassVar[tuple[str, ...]] = ("base_url",)

    @model_validator(mode="after")
    def _check(self) -> TwilioConfig:
        _https(self.base_url, "base_url")
        if not self.account_sid.startswith("AC"):
            raise ValueError("account_sid: a Twilio account SID starts with 'AC'")
        if not self.auth_token:
            raise ValueError("auth_token: required")
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("from_number: required unless messaging_service_sid is given")
        return self


TWILIO_DELIVERED = {"delivered"}
TWILIO_UNDELIVERED = {"undelivered", "failed"}
TWILIO_ACCEPTED = {"accepted", "queued", "sending", "sent", "scheduled"}


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(auth token, URL + every POST parameter's name and value,
    sorted by name))."""
    signed = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class TwilioProvider(_Preset):
    """POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json, basic auth (account SID, auth token), form
    To/From (or MessagingServiceSid)/Body[/StatusCallback]; 201 with JSON `sid`. Errors are 4xx JSON with `code` and
    `message`. Status callbacks and inbound messages are form POSTs signed with X-Twilio-Signature."""

    slug = "Twilio"
    label = "Twilio"
    config_class = TwilioConfig

    def request_shape(self) -> dict[str, Any]:
        config = self.config
        assert isinstance(config, TwilioConfig)
        body = {"To": "{recipient}", "Body": "{text}", "StatusCallback": "{receipt_url}"}
        if config.messaging_service_sid:
            body["MessagingServiceSid"] = config.messaging_service_sid
        else:
            body["From"] = "{sender}"
        return {
            "url": f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json",
            "method": "POST",
            "body_format": "form",
            "body": body,
            "auth": "basic",
            "username": config.account_sid,
            "password": config.auth_token,
            "sender": config.from_number,
            "success_status": [200, 201],
            "reference_field": "sid",
            "success_field": "sid",
        }

    def verify_callback(self, request: CallbackRequest) -> bool:
        config = self.config
        assert isinstance(config, TwilioConfig)
        given = request.header("X-Twilio-Signature")
        expected = twilio_signature(config.auth_token, request.url, request.form)
        return bool(given) and hmac.compare_digest(given, expected)

    def parse_receipts(self, request: CallbackRequest) -> list[Receipt]:
        form = request.form
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        if not sid:
            raise CallbackError("MessageSid: missing from the status callback")
        if not status:
            raise CallbackError("MessageStatus: missing from the status callback")
        outcome: ReceiptOutcome = "pending"
        if status in TWILIO_DELIVERED:
            outcome = "delivered"
        elif status in TWILIO_UNDELIVERED:
            outcome = "undelivered"
        elif status in TWILIO_ACCEPTED:
            outcome = "accepted"
        reason = form.get("ErrorCode", "")
        if form.get("ErrorMessage"):
            reason = f"{reason} {form['ErrorMessage']}".strip()
        return [
            Receipt(
                provider_id=sid,
                outcome=outcome,
                status=status,
                reason=reason,
                reference=request.query.get("ref", ""),
                recipient=form.get("To", ""),
            )
        ]

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        form = request.form
        if not form.get("From"):
            raise CallbackError("From: missing from the inbound message")
        return [InboundMessage(sender=form["From"], text=form.get("Body", ""), provider_id=form.get("MessageSid", ""))]


class InfobipConfig(ProviderConfig):
    base_url: str  # the account's own API address, e.g. https://xxxxx.api.infobip.com
    api_key: str
    sender: str = ""

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    address_fields: ClassVar[tuple[str, ...]] = ("base_url",)

    @model_validator(mode="after")
    def _check(self) -> InfobipConfig:
        _https(self.base_url, "base_url")
        if not self.api_key:
            raise ValueError("api_key: required")
        return self


INFOBIP_ACCEPTED_GROUPS = ["PENDING", "DELIVERED"]
INFOBIP_UNDELIVERED_GROUPS = {"UNDELIVERABLE", "EXPIRED", "REJECTED"}


class InfobipProvider(_Preset):
    """POST {base_url}/sms/2/text/advanced, header `Authorization: App <key>`, JSON messages[].destinations[] (our
    reference as messageId, so receipts name the outbox row), answer messages[0].status.groupName. Delivery
    reports are JSON POSTs `results[]` to notifyUrl; inbound messages JSON `results[]` with from/text."""

    slug = "Infobip"
    label = "Infobip"
    config_class = InfobipConfig

    def request_shape(self) -> dict[str, Any]:
        config = self.config
        assert isinstance(config, InfobipConfig)
        message: dict[str, Any] = {
            "destinations": [{"to": "{recipient_digits}", "messageId": "{reference}"}],
            "text": "{text}",
        }
        if config.sender:
            message["from"] = "{sender}"
        return {
            "url": config.base_url.rstrip("/") + "/sms/2/text/advanced",
            "method": "POST",
            "body_format": "json",
            "body": {"messages": [message]},
            "auth": "header",
            "auth_header": "Authorization",
            "auth_prefix": "App ",
            "token": config.api_key,
            "sender": config.sender,
            "success_status": [200],
            "success_field": "messages[0].status.groupName",
            "success_values": INFOBIP_ACCEPTED_GROUPS,
            "reason_field": "messages[0].status.description",
            "reference_field": "messages[0].messageId",
        }

    def send(self, recipient: str, text: str, reference: str, *, metadata: Mapping[str, str] | None = None) -> str:
        shape = self.http_config()
        receipt_url = self.receipt_url_for(reference)
        if receipt_url:
            body = json.loads(json.dumps(shape.body))
            body["messages"][0]["notifyUrl"] = "{receipt_url}"
            shape = shape.model_copy(update={"body": body})
        return http_send(self, shape, recipient, text, reference, receipt_url)

    def _results(self, request: CallbackRequest) -> list[Any]:
        results = lookup(request.json, "results")
        if not isinstance(results, list):
            raise CallbackError("results: a JSON list is expected")
        return results

    def parse_receipts(self, request: CallbackRequest) -> list[Receipt]:
        receipts = []
        for index, item in enumerate(self._results(request)):
            message_id = _text(lookup(item, "messageId"))
            group = _text(lookup(item, "status.groupName"))
            if not message_id or not group:
                raise CallbackError(f"results[{index}]: messageId and status.groupName are required")
            outcome: ReceiptOutcome = "pending"
            if group == "DELIVERED":
                outcome = "delivered"
            elif group in INFOBIP_UNDELIVERED_GROUPS:
                outcome = "undelivered"
            reason = _text(lookup(item, "error.name"))
            if reason in {"", "NO_ERROR"}:
                reason = _text(lookup(item, "status.description")) if outcome == "undelivered" else ""
            receipts.append(
                Receipt(
                    provider_id=message_id,
                    outcome=outcome,
                    status=_text(lookup(item, "status.name")) or group,
                    reason=reason,
                    reference=message_id if message_id.startswith("outbox-") else "",
                    recipient=_text(lookup(item, "to")),
                )
            )
        return receipts

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        messages = []
        for index, item in enumerate(self._results(request)):
            sender = _text(lookup(item, "from"))
            if not sender:
                raise CallbackError(f"results[{index}].from: missing from the inbound message")
            text = _text(lookup(item, "text")) or _text(lookup(item, "cleanText"))
            messages.append(InboundMessage(sender=sender, text=text, provider_id=_text(lookup(item, "messageId"))))
        return messages
