"""The general HTTP SMS provider, and presets for gateways schemes use (Africa's Talking, Twilio, Infobip).

`HttpProvider` sends through an `HttpConfig` (`http_shape.py`). Each preset is a provider with the vendor's own
config words (`preset_configs.py`); it maps them onto one `HttpConfig` and parses the vendor's delivery receipts and
inbound messages. Protocol facts come from each vendor's public documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

from notifier.providers.base import Provider, ProviderConfig
from notifier.providers.callbacks import (
    CallbackAnswer,
    CallbackError,
    CallbackKind,
    CallbackRequest,
    InboundMessage,
    Receipt,
    lookup,
    receipt_outcome,
)
from notifier.providers.http_shape import HttpConfig, http_send
from notifier.providers.preset_configs import (
    AT_ACCEPTED,
    AT_DELIVERED,
    AT_SENT,
    AT_UNDELIVERED,
    INFOBIP_ACCEPTED_GROUPS,
    INFOBIP_UNDELIVERED_GROUPS,
    TWILIO_ACCEPTED,
    TWILIO_DELIVERED,
    TWILIO_UNDELIVERED,
    AfricasTalkingConfig,
    InfobipConfig,
    TwilioConfig,
)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class HttpProvider(Provider):
    slug = "HttpProvider"
    label = "General HTTP gateway (GET/POST, form/JSON, basic auth or token)"
    config_class: ClassVar[type[ProviderConfig]] = HttpConfig

    def http_config(self) -> HttpConfig:
        return self.config_as(HttpConfig)

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
        outcome = receipt_outcome(status, delivered=config.delivered_values, undelivered=config.undelivered_values)
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


class AfricasTalkingProvider(_Preset):
    """POST {base_url}/version1/messaging, form username/to/message[/from], header apiKey; answer JSON
    SMSMessageData.Recipients[] with statusCode and messageId. Receipts and inbound messages are form POSTs to the
    callback URLs set in the Africa's Talking dashboard (no signature: the URL token is the check)."""

    slug = "AfricasTalking"
    label = "Africa's Talking"
    config_class = AfricasTalkingConfig

    def request_shape(self) -> dict[str, Any]:
        config = self.config_as(AfricasTalkingConfig)
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
        outcome = receipt_outcome(status, delivered=AT_DELIVERED, undelivered=AT_UNDELIVERED, accepted=AT_SENT)
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
        config = self.config_as(TwilioConfig)
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
        config = self.config_as(TwilioConfig)
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
        outcome = receipt_outcome(
            status, delivered=TWILIO_DELIVERED, undelivered=TWILIO_UNDELIVERED, accepted=TWILIO_ACCEPTED
        )
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

    def callback_answer(self, kind: CallbackKind) -> CallbackAnswer | None:
        """Twilio reads the answer to an inbound message as TwiML: an empty Response sends nothing back."""
        return CallbackAnswer("<Response/>", "text/xml") if kind == "inbound" else None

    def parse_inbound(self, request: CallbackRequest) -> list[InboundMessage]:
        form = request.form
        if not form.get("From"):
            raise CallbackError("From: missing from the inbound message")
        return [InboundMessage(sender=form["From"], text=form.get("Body", ""), provider_id=form.get("MessageSid", ""))]


class InfobipProvider(_Preset):
    """POST {base_url}/sms/2/text/advanced, header `Authorization: App <key>`, JSON messages[].destinations[] (our
    reference as messageId, so receipts name the outbox row), answer messages[0].status.groupName. Delivery
    reports are JSON POSTs `results[]` to notifyUrl; inbound messages JSON `results[]` with from/text."""

    slug = "Infobip"
    label = "Infobip"
    config_class = InfobipConfig

    def request_shape(self) -> dict[str, Any]:
        config = self.config_as(InfobipConfig)
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
            outcome = receipt_outcome(group, delivered={"DELIVERED"}, undelivered=INFOBIP_UNDELIVERED_GROUPS)
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
