"""The test_sms endpoint: a fake eGA gateway that checks the hash and records what it got (SPEC §7)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from notifier.delivery.runner import deliver
from notifier.models import FakeGatewayMessage, ProviderAccount
from notifier.providers.ega import EGAConfig, gateway_time, request_body, request_data, request_hash
from tests.factories import bare_outbox

URL = "/api/policy_notification/test_sms/"
KEY = "fake-gateway-key"


@pytest.fixture
def ega_config(db: None) -> EGAConfig:
    raw = {"PrivateKey": KEY, "UserId": "u1", "SenderId": "CHF", "ServiceId": "7", "RequestType": "api"}
    ProviderAccount.objects.create(name="ega", provider="eGASMSGateway", config=raw)
    return EGAConfig.model_validate(raw)


def post(client: Client, config: EGAConfig, text: str, *, key: str = KEY) -> Any:
    sent_at = gateway_time()
    data = request_data(config, "+255712345678", text, sent_at)
    return client.post(
        URL,
        data=request_body(data, sent_at),
        content_type="application/json",
        headers={"X-Auth-Request-Hash": request_hash(key, data), "X-Auth-Request-Id": "u1"},
    )


def test_it_is_off_unless_debug_or_enabled(settings: Any, client: Client, ega_config: EGAConfig) -> None:
    settings.DEBUG = False
    settings.NOTIFIER_ENABLE_TEST_SMS = False
    assert post(client, ega_config, "Hello").status_code == 404
    settings.DEBUG = True
    assert post(client, ega_config, "Hello").status_code == 200


def test_it_records_a_request_whose_hash_verifies(settings: Any, client: Client, ega_config: EGAConfig) -> None:
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    response = post(client, ega_config, "Renouvelez-la à temps.")
    assert response.status_code == 200
    answer = response.json()
    assert not answer.get("error") and answer["reference"].startswith("test-sms-")
    record = FakeGatewayMessage.objects.get()
    assert (record.recipients, record.message, record.sender_id, record.user_id) == (
        "255712345678",
        "Renouvelez-la à temps.",
        "CHF",
        "u1",
    )
    assert KEY not in response.content.decode()


def test_it_refuses_a_wrong_hash_without_revealing_the_expected_one(
    settings: Any, client: Client, ega_config: EGAConfig
) -> None:
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    response = post(client, ega_config, "Hello", key="guessed-key")
    assert response.status_code == 401
    assert response.json() == {"error": "request hash does not verify"}
    assert not FakeGatewayMessage.objects.exists()


def test_it_names_what_is_malformed(settings: Any, client: Client, ega_config: EGAConfig) -> None:
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    response = client.post(URL, data=json.dumps({"data": {"message": "x"}}), content_type="application/json")
    assert response.status_code == 400
    assert "'data' must be a JSON string" in response.json()["error"]


@pytest.mark.django_db(transaction=True)
def test_it_receives_what_delivery_sends_with_the_seed_default_config(settings: Any, live_server: Any) -> None:
    """The default config plus a PrivateKey works on one machine: seeded eGA account → this service's test_sms."""
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    seed = settings.NOTIFIER["providers"]["eGASMSGateway"]
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "providers": {"eGASMSGateway": {**seed, "GateUrl": live_server.url, "PrivateKey": "local-key"}},
    }
    outbox = bare_outbox("La police expire le 31/12/2026. Renouvelez-la à temps.")
    assert deliver(outbox.pk) == "sent"
    outbox.refresh_from_db()
    record = FakeGatewayMessage.objects.get()
    assert record.message == outbox.text
    assert record.recipients == "255712345678"
    assert outbox.provider_reference == f"test-sms-{record.pk}"


def test_it_hides_even_its_methods_when_off(settings: Any, client: Client) -> None:
    settings.DEBUG = False
    settings.NOTIFIER_ENABLE_TEST_SMS = False
    assert client.get(URL).status_code == 404
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    assert client.get(URL).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_request_signed_with_the_seed_empty_key(settings: Any, live_server: Any) -> None:
    """Anyone can sign with an empty key: the seed's account without a PrivateKey is refused, nothing recorded."""
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    seed = settings.NOTIFIER["providers"]["eGASMSGateway"]
    assert seed["PrivateKey"] == ""
    settings.NOTIFIER = {**settings.NOTIFIER, "providers": {"eGASMSGateway": {**seed, "GateUrl": live_server.url}}}
    outbox = bare_outbox("Hello")
    assert deliver(outbox.pk) == "failed"
    outbox.refresh_from_db()
    assert "HTTP 401" in outbox.last_error and "request hash does not verify" in outbox.last_error
    assert not FakeGatewayMessage.objects.exists()


def test_it_refuses_an_empty_key_even_on_a_matching_hash(settings: Any, client: Client, db: None) -> None:
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    raw = {"PrivateKey": "", "UserId": "u1", "SenderId": "CHF", "ServiceId": "7", "RequestType": "api"}
    ProviderAccount.objects.create(name="keyless", provider="eGASMSGateway", config=raw)
    response = post(client, EGAConfig.model_validate(raw), "hello", key="")
    assert response.status_code == 401
    assert response.json() == {"error": "request hash does not verify"}
    assert not FakeGatewayMessage.objects.exists()
