"""Secrets stay where they were set (a new address needs the secret re-entered), unusable URLs are refused on save,
and delivery never hands a non-E.164 recipient to a gateway."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from notifier.delivery.runner import deliver
from notifier.models import DeliveryAttempt, Outbox, ProviderAccount
from notifier.providers.base import MASK
from tests.factories import bare_outbox, ega_account
from tests.gateway import GatewayServer

ACCOUNTS = "/admin/notifier/provideraccount/"


def form_data(name: str, provider: str, config: dict[str, Any], priority: str = "10") -> dict[str, Any]:
    return {"name": name, "provider": provider, "enabled": "on", "priority": priority, "config": json.dumps(config)}


def change(admin_client: Client, account: ProviderAccount, config: dict[str, Any]) -> Any:
    return admin_client.post(
        f"{ACCOUNTS}{account.pk}/change/", form_data(account.name, account.provider, config, str(account.priority))
    )


def test_changing_the_ega_gate_url_with_the_key_masked_is_refused(
    admin_client: Client, gateway: GatewayServer, second_gateway: GatewayServer
) -> None:
    config = {"GateUrl": gateway.url, "SmsResource": "/send", "PrivateKey": "s3cr3t-key", "UserId": "u1"}
    account = ProviderAccount.objects.create(name="ega", provider="eGASMSGateway", priority=10, config=config)
    shown = {**config, "PrivateKey": MASK, "GateUrl": second_gateway.url}
    response = change(admin_client, account, shown)
    assert response.status_code == 200
    assert "PrivateKey: re-enter the secret — GateUrl changed" in response.content.decode()
    account.refresh_from_db()
    assert account.config["GateUrl"] == gateway.url  # nothing saved

    # Sending a test message still goes to the host the key was given for, never to the other one.
    sent = admin_client.post(f"{ACCOUNTS}{account.pk}/send-test/", {"phone": "0712345678", "text": "hi"})
    assert sent.status_code == 302
    assert len(gateway.received) == 1 and second_gateway.received == []

    # With the key typed again for the new host, the change is saved.
    response = change(admin_client, account, {**shown, "PrivateKey": "key-for-the-new-host"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.config["GateUrl"], account.config["PrivateKey"]) == (second_gateway.url, "key-for-the-new-host")


def test_changing_the_sms_resource_path_also_needs_the_key(admin_client: Client, gateway: GatewayServer) -> None:
    config = {"GateUrl": gateway.url, "SmsResource": "/send", "PrivateKey": "s3cr3t-key"}
    account = ProviderAccount.objects.create(name="ega", provider="eGASMSGateway", priority=10, config=config)
    response = change(admin_client, account, {**config, "PrivateKey": MASK, "SmsResource": "/elsewhere"})
    assert "PrivateKey: re-enter the secret — SmsResource changed" in response.content.decode()
    # Other fields change freely with the key masked.
    assert change(admin_client, account, {**config, "PrivateKey": MASK, "SenderId": "CHF2"}).status_code == 302
    account.refresh_from_db()
    assert (account.config["PrivateKey"], account.config["SenderId"]) == ("s3cr3t-key", "CHF2")


def test_changing_the_http_json_url_with_the_token_masked_is_refused(
    admin_client: Client, gateway: GatewayServer, second_gateway: GatewayServer
) -> None:
    config = {"url": f"{gateway.url}/sms", "token": "bearer-secret", "headers": {"Authorization": "Bearer {token}"}}
    account = ProviderAccount.objects.create(name="json", provider="HttpJsonProvider", priority=10, config=config)
    response = change(admin_client, account, {**config, "token": MASK, "url": f"{second_gateway.url}/sms"})
    assert response.status_code == 200
    assert "token: re-enter the secret — url changed" in response.content.decode()
    admin_client.post(f"{ACCOUNTS}{account.pk}/send-test/", {"phone": "0712345678", "text": "hi"})
    assert second_gateway.received == []
    assert gateway.received[0].header("Authorization") == "Bearer bearer-secret"


@pytest.mark.parametrize(
    ("provider", "config", "secret", "address"),
    [
        ("HttpProvider", {"url": "https://sms.example.org/send", "auth": "header", "token": "t0k"}, "token", "url"),
        ("AfricasTalking", {"username": "sandbox", "api_key": "at-key"}, "api_key", "base_url"),
        (
            "Twilio",
            {"account_sid": "AC1", "auth_token": "tw-token", "from_number": "+15005550006"},
            "auth_token",
            "base_url",
        ),
        ("Infobip", {"base_url": "https://abc.api.infobip.com", "api_key": "ib-key"}, "api_key", "base_url"),
    ],
)
def test_the_general_provider_and_presets_need_their_secret_again_for_a_new_address(
    admin_client: Client, provider: str, config: dict[str, Any], secret: str, address: str
) -> None:
    account = ProviderAccount.objects.create(name="gw", provider=provider, priority=10, config=config)
    response = change(admin_client, account, {**config, secret: MASK, address: "https://collector.example.net"})
    assert response.status_code == 200
    assert f"{secret}: re-enter the secret — {address} changed" in response.content.decode()
    account.refresh_from_db()
    assert account.config == config  # nothing saved


@pytest.mark.parametrize(
    ("provider", "config", "error"),
    [
        ("eGASMSGateway", {"GateUrl": "http://"}, "GateUrl: must name a host"),
        ("eGASMSGateway", {"GateUrl": "ftp://gw.example.org"}, "GateUrl: must start with http:// or https://"),
        ("eGASMSGateway", {"GateUrl": "gw.example.org"}, "GateUrl: must start with http:// or https://"),
        ("eGASMSGateway", {"GateUrl": "http://gw example.org"}, "GateUrl: must not contain spaces"),
        ("eGASMSGateway", {"GateUrl": "http://gw.example.org:99999"}, "GateUrl: not a usable URL"),
        ("eGASMSGateway", {"SmsResource": "/send\n"}, "SmsResource: must not contain spaces or control characters"),
        ("HttpJsonProvider", {"url": "https:///sms"}, "url: must name a host"),
        ("HttpJsonProvider", {"url": "javascript:alert(1)"}, "url: must start with http:// or https://"),
        ("HttpProvider", {"url": "https:///send"}, "url: must name a host"),
        ("Infobip", {"base_url": "https://ib example.com", "api_key": "k"}, "base_url: must not contain spaces"),
    ],
)
def test_an_unusable_url_is_refused_on_save_naming_the_field(
    admin_client: Client, provider: str, config: dict[str, Any], error: str
) -> None:
    response = admin_client.post(f"{ACCOUNTS}add/", form_data("new", provider, config))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not ProviderAccount.objects.exists()


@pytest.mark.parametrize(
    ("recipient", "reason"),
    [
        ("0712345678", "recipient: '0712345678' is not in E.164 form (+ and digits only)"),
        ("+255 712 345 678", "recipient: '+255 712 345 678' is not in E.164 form (+ and digits only)"),
        ("+2551", "recipient: '+2551' is not a valid phone number"),
        ("", "recipient: missing"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_delivery_refuses_a_recipient_that_is_not_e164_as_a_permanent_failure(
    gateway: GatewayServer, recipient: str, reason: str
) -> None:
    ega_account("ega", gateway.url)
    outbox = bare_outbox("Your policy expires today.")
    Outbox.objects.filter(pk=outbox.pk).update(recipient=recipient)  # written by something other than detection
    assert deliver(outbox.pk) == "failed"
    outbox.refresh_from_db()
    assert outbox.status == Outbox.Status.FAILED
    assert outbox.last_error == reason
    assert gateway.received == []
    assert not DeliveryAttempt.objects.exists()


def test_delivery_still_sends_to_a_valid_e164_recipient(
    db: None, gateway: GatewayServer, make_family: Callable[..., Any]
) -> None:
    ega_account("ega", gateway.url)
    outbox = bare_outbox("Your policy expires today.")
    assert deliver(outbox.pk) == "sent"
    assert len(gateway.received) == 1
