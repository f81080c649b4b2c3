"""Provider plug-ins against a real local HTTP server: the eGA protocol byte for byte, and every failure kind."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from notifier.models import ProviderAccount
from notifier.providers import account_provider, seed_provider_accounts
from notifier.providers.base import (
    MASK,
    PermanentError,
    Provider,
    ProviderConfigError,
    Timeouts,
    TransientError,
    UnknownOutcomeError,
)
from notifier.providers.ega import EGASMSGateway, request_data, request_hash
from notifier.providers.http_json import HttpJsonProvider
from notifier.providers.registry import UnknownProviderError, find_provider, get_provider, provider_classes
from notifier.providers.text import TextNotificationProvider
from tests.factories import ega_config
from tests.gateway import GatewayServer, Reply, closed_port_url

QUICK = Timeouts(connect=0.5, read=0.3)
VECTOR_TIME = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)  # 11:00 in UTC+3
VECTOR_1_TEXT = "Your policy expires on 2026-12-31."
VECTOR_1_HASH = "4hSgcyoPkt91qecuCwmVKIomOU/+Dnrct/xOHWMiVtc="
VECTOR_2_TEXT = "La police expire le 31/12/2026. Renouvelez-la à temps."
VECTOR_2_HASH = "69Ym6839w6y6ohmyHLSyn91YzzllhwnCDA4PPiSeotM="


def ega(gateway_url: str, **overrides: Any) -> Provider:
    return EGASMSGateway(EGASMSGateway.parse_config(ega_config(gateway_url, **overrides)), QUICK)


def test_it_signs_both_spec_test_vectors() -> None:
    config = EGASMSGateway.parse_config({"PrivateKey": "s3cr3t-key", "SenderId": "CHF", "ServiceId": "42"})
    first = request_data(config, "+255712345678", VECTOR_1_TEXT, "2026-11-28 11:00:00")  # type: ignore[arg-type]
    assert first == (
        '{"message":"Your policy expires on 2026-12-31.","datetime":"2026-11-28 11:00:00",'
        '"sender_id":"CHF","mobile_service_id":"42","recipients":"255712345678"}'
    )
    assert request_hash("s3cr3t-key", first) == VECTOR_1_HASH
    second = request_data(config, "+255712345678", VECTOR_2_TEXT, "2026-11-28 11:00:00")  # type: ignore[arg-type]
    assert "Renouvelez-la \\u00e0 temps." in second
    assert request_hash("s3cr3t-key", second) == VECTOR_2_HASH


@pytest.mark.parametrize(
    ("text", "expected_body", "expected_hash"),
    [
        (
            VECTOR_1_TEXT,
            rb'{"data":"{\"message\":\"Your policy expires on 2026-12-31.\",\"datetime\":\"2026-11-28 11:00:00\",'
            rb'\"sender_id\":\"CHF\",\"mobile_service_id\":\"42\",\"recipients\":\"255712345678\"}",'
            rb'"datetime":"2026-11-28 11:00:00"}',
            VECTOR_1_HASH,
        ),
        (
            VECTOR_2_TEXT,
            rb'{"data":"{\"message\":\"La police expire le 31/12/2026. Renouvelez-la \\u00e0 temps.\",'
            rb"\"datetime\":\"2026-11-28 11:00:00\","
            rb'\"sender_id\":\"CHF\",\"mobile_service_id\":\"42\",\"recipients\":\"255712345678\"}",'
            rb'"datetime":"2026-11-28 11:00:00"}',
            VECTOR_2_HASH,
        ),
    ],
)
def test_it_sends_the_ega_request_byte_for_byte(
    gateway: GatewayServer, text: str, expected_body: bytes, expected_hash: str
) -> None:
    with time_machine.travel(VECTOR_TIME, tick=False):
        reference = ega(gateway.url).send("+255712345678", text, "outbox-1")
    assert reference == "outbox-1"
    [request] = gateway.received
    assert request.method == "POST"
    assert request.path == "/api/sms/v1/send"
    assert request.body == expected_body
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Auth-Request-Hash") == expected_hash
    assert request.header("X-Auth-Request-Id") == "user-7"
    assert request.header("X-Auth-Request-Type") == "api"


def test_it_reads_the_seed_header_values_as_hash_user_and_type_and_never_sends_the_key(
    gateway: GatewayServer,
) -> None:
    """SPEC §13.4: upstream crashes on the shipped "PrivateKey,UserId,RequestType" header config."""
    provider = ega(
        gateway.url,
        HeaderKeys="X-Auth-Request-Hash,X-Auth-Request-Id,X-Auth-Request-Type",
        HeaderValues="PrivateKey,UserId,RequestType",
    )
    with time_machine.travel(VECTOR_TIME, tick=False):
        provider.send("+255712345678", VECTOR_1_TEXT, "outbox-2")
    [request] = gateway.received
    assert request.header("X-Auth-Request-Hash") == VECTOR_1_HASH
    assert "s3cr3t-key" not in request.body.decode() + repr(request.headers)


def test_it_maps_header_names_and_values_from_config(gateway: GatewayServer) -> None:
    provider = ega(gateway.url, HeaderKeys="X-User, X-Sig", HeaderValues="UserId, Hash")
    with time_machine.travel(VECTOR_TIME, tick=False):
        provider.send("+255712345678", VECTOR_1_TEXT, "r")
    [request] = gateway.received
    assert request.header("X-User") == "user-7"
    assert request.header("X-Sig") == VECTOR_1_HASH
    assert request.header("X-Auth-Request-Hash") is None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"HeaderValues": "PrivateKey,UserId"}, "HeaderValues: 2 values for 3 HeaderKeys"),
        ({"HeaderValues": "PrivateKey,UserId,Password"}, "HeaderValues: unknown value 'Password'"),
        ({"PrivateKey": 42}, "PrivateKey: Input should be a valid string"),
        ({"GateUrl": "ftp://gateway"}, "GateUrl: must start with http"),
        ({"Sender": "CHF"}, "Sender: unknown field"),
    ],
)
def test_it_refuses_a_bad_ega_config_naming_the_field(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ProviderConfigError, match=named):
        EGASMSGateway.parse_config(raw)


def test_it_masks_secrets_when_shown_and_keeps_them_when_the_mask_comes_back() -> None:
    stored = {"PrivateKey": "s3cr3t-key", "UserId": "user-7"}
    shown = EGASMSGateway.masked(stored)
    assert shown == {"PrivateKey": MASK, "UserId": "user-7"}
    assert EGASMSGateway.unmask({**shown, "UserId": "user-8"}, stored) == {
        "PrivateKey": "s3cr3t-key",
        "UserId": "user-8",
    }
    assert EGASMSGateway.unmask({"PrivateKey": "new-key"}, stored)["PrivateKey"] == "new-key"


@pytest.mark.parametrize(
    ("reply", "error", "http_status"),
    [
        (Reply(status=500, body=b"boom"), TransientError, 500),
        (Reply(status=503, body=b"maintenance"), TransientError, 503),
        (Reply(status=429, body=b'{"error": "slow down"}'), TransientError, 429),
        (Reply(status=400, body=b'{"error": "bad recipient"}'), PermanentError, 400),
        (Reply(status=401, body=b"unauthorised"), PermanentError, 401),
        (Reply(status=200, body=b'{"error": "Invalid mobile number"}'), PermanentError, 200),
        (Reply(status=200, body=b"<html>proxy</html>", content_type="text/html"), UnknownOutcomeError, 200),
    ],
)
def test_it_classifies_gateway_answers(
    gateway: GatewayServer, reply: Reply, error: type[Exception], http_status: int
) -> None:
    gateway.queue(reply)
    with pytest.raises(error) as raised:
        ega(gateway.url).send("+255712345678", "Hello", "outbox-3")
    assert raised.value.http_status == http_status  # type: ignore[attr-defined]


def test_it_accepts_a_json_answer_whose_error_is_falsy(gateway: GatewayServer) -> None:
    gateway.queue(Reply(body=b'{"error": false, "reference": "EGA-991"}'))
    assert ega(gateway.url).send("+255712345678", "Hello", "outbox-4") == "EGA-991"


def test_it_calls_a_closed_port_a_transient_failure() -> None:
    with pytest.raises(TransientError, match="cannot connect"):
        ega(closed_port_url()).send("+255712345678", "Hello", "outbox-5")


def test_it_calls_a_read_timeout_an_unknown_outcome(gateway: GatewayServer) -> None:
    """SPEC §13.4: upstream had no timeout at all; here a silent gateway costs the read timeout, then `unknown`."""
    gateway.queue(Reply(delay=1.0))
    with pytest.raises(UnknownOutcomeError, match=r"read timeout of 0\.3s"):
        ega(gateway.url).send("+255712345678", "Hello", "outbox-6")
    assert len(gateway.received) == 1


def test_it_calls_a_connection_dropped_after_sending_an_unknown_outcome(gateway: GatewayServer) -> None:
    gateway.queue(Reply(drop=True))
    with pytest.raises(UnknownOutcomeError, match="dropped after the request was sent"):
        ega(gateway.url).send("+255712345678", "Hello", "outbox-7")


def test_it_writes_one_file_per_reference_and_overwrites_on_retry(tmp_path: Path) -> None:
    provider = TextNotificationProvider(
        TextNotificationProvider.parse_config({"DestinationFolder": str(tmp_path)}), QUICK
    )
    metadata = {"language": "sw", "notification_type": "expiration_of_policy"}
    path = provider.send("+255712345678", "first", "outbox-8", metadata=metadata)
    provider.send("+255712345678", "second", "outbox-8", metadata=metadata)
    assert [p.name for p in tmp_path.iterdir()] == ["outbox-8.txt"]
    content = Path(path).read_text(encoding="utf-8")
    assert "recipient: +255712345678" in content
    assert "language: sw" in content
    assert "type: expiration_of_policy" in content
    assert content.rstrip().endswith("second")


def test_it_puts_a_relative_destination_folder_under_the_var_dir(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path
    provider = TextNotificationProvider(TextNotificationProvider.parse_config({}), QUICK)
    path = provider.send("+255712345678", "hello", "outbox-9")
    assert Path(path) == tmp_path / "sent_notification" / "outbox-9.txt"


def json_provider(base_url: str, **overrides: Any) -> Provider:
    raw = {
        "url": base_url + "/messages",
        "headers": {"Content-Type": "application/json", "Authorization": "Bearer {token}"},
        "body_template": {"to": "{recipient_digits}", "body": "{text}", "meta": {"ref": "{reference}"}},
        "token": "tok-123",
        **overrides,
    }
    return HttpJsonProvider(HttpJsonProvider.parse_config(raw), QUICK)


def test_it_fills_the_json_body_template_without_breaking_json(gateway: GatewayServer) -> None:
    gateway.queue(Reply(body=b'{"result": {"id": "abc"}}'))
    provider = json_provider(gateway.url, reference_field="result.id")
    text = 'He said "renew" {soon} \\ à'
    assert provider.send("+255712345678", text, "outbox-10") == "abc"
    [request] = gateway.received
    assert request.path == "/messages"
    assert request.header("Authorization") == "Bearer tok-123"
    assert json.loads(request.body) == {"to": "255712345678", "body": text, "meta": {"ref": "outbox-10"}}


def test_it_applies_the_json_success_rule(gateway: GatewayServer) -> None:
    gateway.queue(Reply(body=b'{"status": "queued"}'), Reply(body=b'{"status": "rejected"}'))
    provider = json_provider(gateway.url, success_field="status", success_value="queued")
    assert provider.send("+255712345678", "a", "outbox-11") == "outbox-11"
    with pytest.raises(PermanentError, match="status='rejected'"):
        provider.send("+255712345678", "b", "outbox-12")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"body_template": {"to": "{phone}"}}, r"body_template.to: unknown placeholder \{phone\}"),
        ({"headers": {"X-Key": "{secret}"}}, r"headers.X-Key: unknown placeholder \{secret\}"),
        ({"method": "DELETE"}, "method"),
        ({"success_status": [500]}, "success_status"),
        ({"url": "gateway.example"}, "url: must start with http"),
    ],
)
def test_it_refuses_a_bad_json_provider_config_naming_the_field(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ProviderConfigError, match=named):
        json_provider("http://127.0.0.1:9", **overrides)


def test_it_masks_the_json_provider_token() -> None:
    assert HttpJsonProvider.masked({"url": "http://x", "token": "tok-123"})["token"] == MASK


def test_it_registers_providers_by_unique_slug(settings: Any) -> None:
    assert get_provider("eGASMSGateway") is EGASMSGateway
    assert find_provider("egasmsgateway") is EGASMSGateway
    assert set(provider_classes()) == {
        "eGASMSGateway",
        "TextNotificationProvider",
        "HttpJsonProvider",
        "HttpProvider",
        "AfricasTalking",
        "Twilio",
        "Infobip",
    }
    with pytest.raises(UnknownProviderError, match="'Nexmo'"):
        get_provider("Nexmo")
    settings.NOTIFIER_PROVIDER_CLASSES = [*settings.NOTIFIER_PROVIDER_CLASSES, "notifier.providers.ega.EGASMSGateway"]
    with pytest.raises(ImproperlyConfigured, match="slug 'eGASMSGateway' registered twice"):
        provider_classes()


@pytest.mark.django_db
def test_it_seeds_accounts_from_the_providers_config_once(settings: Any) -> None:
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "providers": {
            "eGASMSGateway": {**settings.NOTIFIER["providers"]["eGASMSGateway"], "PrivateKey": "k"},
            "TextNotificationProvider": {"DestinationFolder": "out"},
        },
    }
    created = seed_provider_accounts()
    assert [(a.name, a.provider, a.priority, a.enabled) for a in created] == [
        ("eGASMSGateway", "eGASMSGateway", 10, True),
        ("TextNotificationProvider", "TextNotificationProvider", 20, True),
    ]
    assert ProviderAccount.objects.get(name="eGASMSGateway").config["PrivateKey"] == "k"
    assert isinstance(account_provider(created[0]), EGASMSGateway)
    assert seed_provider_accounts() == []
    assert ProviderAccount.objects.count() == 2


@pytest.mark.django_db
def test_it_refuses_to_seed_an_unknown_provider_naming_it(settings: Any) -> None:
    from notifier.config import ConfigError

    settings.NOTIFIER = {**settings.NOTIFIER, "providers": {"Nexmo": {"sid": "x"}}}
    with pytest.raises(ConfigError, match=r"'providers\.Nexmo': unknown provider"):
        seed_provider_accounts()
    assert not ProviderAccount.objects.exists()
