"""Issue 14.2: the general HTTP provider and the Africa's Talking, Twilio and Infobip presets, each against a local
fake speaking the vendor's documented protocol (tests/gateway.py): send, error answer, auth refused."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from notifier.providers.base import MASK, PermanentError, Provider, ProviderConfigError, Timeouts
from notifier.providers.http_generic import (
    AfricasTalkingProvider,
    HttpProvider,
    InfobipProvider,
    TwilioProvider,
)
from tests import gateway as fake
from tests.gateway import GatewayServer, Reply

QUICK = Timeouts(connect=0.5, read=2.0)


def build(cls: type[Provider], raw: dict[str, Any]) -> Provider:
    return cls(cls.parse_config(raw), QUICK)


def africastalking(url: str, key: str = fake.AT_KEY) -> Provider:
    return build(AfricasTalkingProvider, {"username": fake.AT_USERNAME, "api_key": key, "base_url": url})


def twilio(url: str, token: str = fake.TWILIO_TOKEN) -> Provider:
    raw = {"account_sid": fake.TWILIO_SID, "auth_token": token, "from_number": fake.TWILIO_FROM, "base_url": url}
    return build(TwilioProvider, raw)


def infobip(url: str, key: str = fake.INFOBIP_KEY) -> Provider:
    return build(InfobipProvider, {"base_url": url, "api_key": key, "sender": "CHF"})


# --- Africa's Talking ---------------------------------------------------------------------------------------


def test_africastalking_sends_a_form_with_the_api_key_header(gateway: GatewayServer) -> None:
    reference = africastalking(gateway.url).send("+255712345678", "Habari, bima yako", "outbox-1")
    assert reference == "ATXid_00000001"
    [seen] = gateway.received
    assert (seen.vendor, seen.method, seen.path) == ("africastalking", "POST", "/version1/messaging")
    assert seen.header("apikey") == fake.AT_KEY
    assert seen.header("accept") == "application/json"
    assert seen.form == {"username": "sandbox", "to": "+255712345678", "message": "Habari, bima yako"}


def test_africastalking_error_answer_is_permanent_with_the_recipient_status(gateway: GatewayServer) -> None:
    with pytest.raises(PermanentError, match=r"statusCode=403, InvalidPhoneNumber") as raised:
        africastalking(gateway.url).send(fake.REFUSED_NUMBER, "Hello", "outbox-2")
    assert raised.value.http_status == 201


def test_africastalking_refused_auth_is_permanent(gateway: GatewayServer) -> None:
    with pytest.raises(PermanentError, match="HTTP 401: The supplied authentication is invalid") as raised:
        africastalking(gateway.url, key="wrong").send("+255712345678", "Hello", "outbox-3")
    assert raised.value.http_status == 401


# --- Twilio -------------------------------------------------------------------------------------------------


def test_twilio_sends_a_form_with_basic_auth_and_returns_the_sid(gateway: GatewayServer) -> None:
    reference = twilio(gateway.url).send("+255712345678", "Your policy starts today.", "outbox-4")
    assert reference == "SM00000000000000000000000000000001"
    [seen] = gateway.received
    assert seen.path == "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
    pair = base64.b64decode((seen.header("authorization") or "").removeprefix("Basic ")).decode()
    assert pair == "AC0123456789abcdef0123456789abcdef:twilio-token-abcdef"
    assert seen.form == {"To": "+255712345678", "From": "+15005550006", "Body": "Your policy starts today."}


def test_twilio_sends_the_per_message_status_callback_when_the_public_url_is_known(gateway: GatewayServer) -> None:
    provider = twilio(gateway.url)
    provider.receipt_url = "https://sms.example/api/policy_notification/receipts/tok/"
    provider.send("+255712345678", "Hi", "outbox-5")
    [seen] = gateway.received
    assert seen.form["StatusCallback"] == "https://sms.example/api/policy_notification/receipts/tok/?ref=outbox-5"


def test_twilio_error_answer_is_permanent_with_its_message(gateway: GatewayServer) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 400: .*21211.*is not a valid phone number"):
        twilio(gateway.url).send(fake.REFUSED_NUMBER, "Hello", "outbox-6")


def test_twilio_refused_auth_is_permanent(gateway: GatewayServer) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 401: .*20003") as raised:
        twilio(gateway.url, token="wrong").send("+255712345678", "Hello", "outbox-7")
    assert raised.value.http_status == 401


# --- Infobip ------------------------------------------------------------------------------------------------


def test_infobip_posts_json_with_the_app_key_and_our_reference_as_message_id(gateway: GatewayServer) -> None:
    reference = infobip(gateway.url).send("+255712345678", "La police expire le 31/12/2026.", "outbox-8")
    assert reference == "outbox-8"
    [seen] = gateway.received
    assert seen.path == "/sms/2/text/advanced"
    assert seen.header("authorization") == "App ib-key-0123456789"
    assert seen.json == {
        "messages": [
            {
                "destinations": [{"to": "255712345678", "messageId": "outbox-8"}],
                "text": "La police expire le 31/12/2026.",
                "from": "CHF",
            }
        ]
    }


def test_infobip_rejected_status_is_permanent(gateway: GatewayServer) -> None:
    with pytest.raises(PermanentError, match=r"groupName='REJECTED', Missing destination\."):
        infobip(gateway.url).send(fake.REFUSED_NUMBER, "Hello", "outbox-9")


def test_infobip_refused_auth_is_permanent(gateway: GatewayServer) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 401: .*Invalid login details"):
        infobip(gateway.url, key="wrong").send("+255712345678", "Hello", "outbox-10")


# --- the general provider -----------------------------------------------------------------------------------


def test_general_provider_get_with_query_parameters(gateway: GatewayServer) -> None:
    gateway.queue(Reply(body=b'{"result": {"code": "0", "id": "M-77"}}'))
    raw = {
        "url": f"{gateway.url}/api/send?account=chf",
        "method": "GET",
        "body_format": "none",
        "body": {},
        "query": {"to": "{recipient_digits}", "msg": "{text}", "key": "{token}"},
        "token": "tok-1",
        "success_field": "result.code",
        "success_values": ["0"],
        "reference_field": "result.id",
    }
    assert build(HttpProvider, raw).send("+255712345678", "Sawa & asante", "outbox-11") == "M-77"
    [request] = gateway.received
    split = urlsplit(request.path)
    assert (request.method, split.path) == ("GET", "/api/send")
    assert parse_qs(split.query) == {
        "account": ["chf"],
        "to": ["255712345678"],
        "msg": ["Sawa & asante"],
        "key": ["tok-1"],
    }
    assert request.body == b""


def test_general_provider_post_form_with_basic_auth(gateway: GatewayServer) -> None:
    raw = {
        "url": gateway.url + "/sms",
        "body_format": "form",
        "body": {"dest": "{recipient}", "body": "{text}", "src": "{sender}"},
        "auth": "basic",
        "username": "scheme",
        "password": "pw-9",
        "sender": "CHF",
    }
    build(HttpProvider, raw).send("+255712345678", "Hello", "outbox-12")
    [request] = gateway.received
    assert request.header("Authorization") == "Basic " + base64.b64encode(b"scheme:pw-9").decode()
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode()) == {"dest": ["+255712345678"], "body": ["Hello"], "src": ["CHF"]}


def test_general_provider_post_json_with_a_header_token_and_a_refusal_by_field(gateway: GatewayServer) -> None:
    gateway.queue(Reply(body=b'{"ok": false, "reason": "blacklisted"}'))
    raw = {
        "url": gateway.url + "/v2/sms",
        "body": {"to": ["{recipient}"], "content": {"text": "{text}"}},
        "auth": "header",
        "auth_header": "X-Api-Key",
        "auth_prefix": "",
        "token": "tok-2",
        "success_field": "ok",
        "success_values": [True],
        "reason_field": "reason",
    }
    with pytest.raises(PermanentError, match=r"ok=False, blacklisted"):
        build(HttpProvider, raw).send("+255712345678", 'Say "hi"', "outbox-13")
    [request] = gateway.received
    assert request.header("X-Api-Key") == "tok-2"
    assert json.loads(request.body) == {"to": ["+255712345678"], "content": {"text": 'Say "hi"'}}


@pytest.mark.parametrize(
    ("cls", "raw", "named"),
    [
        (HttpProvider, {"url": "ftp://x"}, "url: must start with http"),
        (HttpProvider, {"url": "http://x", "method": "GET"}, "body_format: a GET request has no body"),
        (HttpProvider, {"url": "http://x", "auth": "basic"}, "username: required with auth 'basic'"),
        (HttpProvider, {"url": "http://x", "query": {"a": "{phone}"}}, r"query.a: unknown placeholder \{phone\}"),
        (HttpProvider, {"url": "http://x", "body_format": "xml"}, "body_format: Input should be 'none', 'form'"),
        (HttpProvider, {"url": "http://x", "success_values": [1]}, "success_field: required when success_values"),
        (AfricasTalkingProvider, {"username": "u"}, "api_key: Field required"),
        (TwilioProvider, {"account_sid": "XY1", "auth_token": "t", "from_number": "+1"}, "account_sid: a Twilio"),
        (TwilioProvider, {"account_sid": "AC1", "auth_token": "t"}, "from_number: required unless"),
        (InfobipProvider, {"base_url": "x.api.infobip.com", "api_key": "k"}, "base_url: must start with http"),
        (InfobipProvider, {"base_url": "https://x", "api_key": "k", "apikey": "k"}, "apikey: unknown field"),
    ],
)
def test_provider_configs_are_refused_naming_the_field(cls: type[Provider], raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ProviderConfigError, match=named):
        cls.parse_config(raw)


def test_secrets_are_masked_for_every_preset() -> None:
    assert AfricasTalkingProvider.masked({"username": "u", "api_key": "k"}) == {"username": "u", "api_key": MASK}
    twilio_shown = TwilioProvider.masked({"account_sid": "AC1", "auth_token": "t"})
    assert twilio_shown == {"account_sid": "AC1", "auth_token": MASK}
    assert InfobipProvider.masked({"api_key": "k", "base_url": "https://x"})["api_key"] == MASK
    assert HttpProvider.masked({"url": "http://x", "password": "p", "token": "t"}) == {
        "url": "http://x",
        "password": MASK,
        "token": MASK,
    }


def test_a_refused_send_never_shows_the_key(gateway: GatewayServer) -> None:
    provider = africastalking(gateway.url, key="wrong-but-secret-key")
    with pytest.raises(PermanentError) as raised:
        provider.send("+255712345678", "Hello", "outbox-14")
    assert "wrong-but-secret-key" not in raised.value.message
    assert provider.secret_values() == ["wrong-but-secret-key"]
