"""Admin for provider accounts (validated config, masked secrets, test message), outbox and attempts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from notifier.delivery.runner import deliver
from notifier.models import DeliveryAttempt, Family, Outbox, Policy, ProviderAccount
from notifier.providers.base import MASK
from tests.gateway import GatewayServer, Reply

ACCOUNTS = "/admin/notifier/provideraccount/"


@pytest.fixture
def account(db: None, gateway: GatewayServer) -> ProviderAccount:
    config = {"GateUrl": gateway.url, "SmsResource": "/send", "PrivateKey": "s3cr3t-key", "UserId": "u1"}
    return ProviderAccount.objects.create(name="ega", provider="eGASMSGateway", priority=10, config=config)


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {"name": "backup", "provider": "eGASMSGateway", "enabled": "on", "priority": "20", "config": "{}"}
    data.update(overrides)
    return data


def test_it_refuses_an_invalid_config_naming_the_field(admin_client: Client) -> None:
    bad = json.dumps({"GateUrl": "http://gw", "HeaderValues": "PrivateKey,UserId,Password"})
    response = admin_client.post(f"{ACCOUNTS}add/", form_data(config=bad))
    assert response.status_code == 200
    assert "HeaderValues: unknown value &#x27;Password&#x27;" in response.content.decode()
    response = admin_client.post(f"{ACCOUNTS}add/", form_data(config='{"PrivateKey": 5}'))
    assert "PrivateKey: Input should be a valid string" in response.content.decode()
    response = admin_client.post(f"{ACCOUNTS}add/", form_data(config="{not json"))
    assert "not valid JSON" in response.content.decode()
    assert not ProviderAccount.objects.exists()


def test_it_stores_a_valid_config_with_its_defaults(admin_client: Client) -> None:
    response = admin_client.post(f"{ACCOUNTS}add/", form_data(config='{"PrivateKey": "k2", "SenderId": "CHF"}'))
    assert response.status_code == 302
    stored = ProviderAccount.objects.get(name="backup").config
    assert stored["PrivateKey"] == "k2" and stored["HeaderValues"] == "PrivateKey,UserId,RequestType"


def test_it_masks_secrets_and_keeps_them_when_the_mask_is_saved_back(
    admin_client: Client, account: ProviderAccount
) -> None:
    page = admin_client.get(f"{ACCOUNTS}{account.pk}/change/").content.decode()
    assert "s3cr3t-key" not in page and MASK in page
    shown = {**account.config, "PrivateKey": MASK, "UserId": "u2"}
    response = admin_client.post(
        f"{ACCOUNTS}{account.pk}/change/", form_data(name="ega", priority="10", config=json.dumps(shown))
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.config["PrivateKey"], account.config["UserId"]) == ("s3cr3t-key", "u2")


def test_it_sends_a_test_message_to_a_number(
    admin_client: Client, account: ProviderAccount, gateway: GatewayServer
) -> None:
    url = f"{ACCOUNTS}{account.pk}/send-test/"
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"phone": "0712 345 678", "text": "Hello from admin"}, follow=True)
    assert "sent to +255712345678" in response.content.decode()
    [request] = gateway.received
    assert json.loads(json.loads(request.body)["data"])["message"] == "Hello from admin"


def test_it_reports_a_failed_test_message_without_secrets(
    admin_client: Client, account: ProviderAccount, gateway: GatewayServer
) -> None:
    gateway.queue(Reply(status=403, body=b'{"error": "key s3cr3t-key revoked"}'))
    url = f"{ACCOUNTS}{account.pk}/send-test/"
    page = admin_client.post(url, {"phone": "0712345678", "text": "Hi"}, follow=True).content.decode()
    assert "Ega: refused by the gateway: HTTP 403" in page and "s3cr3t-key" not in page
    page = admin_client.post(url, {"phone": "12", "text": "Hi"}).content.decode()
    assert "not a valid phone number" in page
    assert len(gateway.received) == 1


def test_it_lists_accounts_with_their_breaker_state(admin_client: Client, account: ProviderAccount) -> None:
    page = admin_client.get(ACCOUNTS).content.decode()
    assert "closed" in page


@pytest.fixture
def sent_and_failed(
    account: ProviderAccount,
    gateway: GatewayServer,
    make_family: Callable[..., Family],
    make_policy: Callable[..., Policy],
) -> tuple[Outbox, Outbox]:
    rows = []
    for phone in ("0712345678", "0754000111"):
        family = make_family(head_phone=phone, consent={"approvalOfNotification": True})
        policy = make_policy(family)
        rows.append(
            Outbox.objects.create(
                policy=policy,
                family=family,
                notification_type="expiration_of_policy",
                event_date=policy.expiry_date or policy.start_date,
                recipient="+255" + phone[1:],
                language="en",
            )
        )
    gateway.queue(Reply(), Reply(status=400, body=b'{"error": "rejected"}'))
    assert deliver(rows[0].pk) == "sent" and deliver(rows[1].pk) == "failed"
    return rows[0], rows[1]


def test_it_filters_and_searches_the_outbox(admin_client: Client, sent_and_failed: tuple[Outbox, Outbox]) -> None:
    sent, failed = sent_and_failed
    assert failed.family.head_insuree is not None and failed.family.head_insuree.chf_id is not None
    url = "/admin/notifier/outbox/"
    by_chfid = admin_client.get(url, {"q": failed.family.head_insuree.chf_id})
    assert [row.pk for row in by_chfid.context["cl"].result_list] == [failed.pk]
    by_phone = admin_client.get(url, {"q": "+255712345678"})
    assert [row.pk for row in by_phone.context["cl"].result_list] == [sent.pk]
    by_status = admin_client.get(url, {"status__exact": "failed"})
    assert [row.pk for row in by_status.context["cl"].result_list] == [failed.pk]
    by_provider = admin_client.get(url, {"provider": "eGASMSGateway"})
    assert {row.pk for row in by_provider.context["cl"].result_list} == {sent.pk, failed.pk}
    by_type = admin_client.get(url, {"notification_type__exact": "renewal_of_policy"})
    assert list(by_type.context["cl"].result_list) == []


def test_it_resends_and_cancels_from_the_outbox_admin(
    admin_client: Client, sent_and_failed: tuple[Outbox, Outbox]
) -> None:
    sent, failed = sent_and_failed
    url = "/admin/notifier/outbox/"
    admin_client.post(url, {"action": "resend_selected", "_selected_action": [sent.pk, failed.pk]})
    assert Outbox.objects.get(pk=failed.pk).status == Outbox.Status.PENDING
    assert Outbox.objects.get(pk=sent.pk).status == Outbox.Status.SENT
    admin_client.post(url, {"action": "cancel_selected", "_selected_action": [sent.pk, failed.pk]})
    assert Outbox.objects.get(pk=failed.pk).status == Outbox.Status.CANCELLED
    assert Outbox.objects.get(pk=sent.pk).status == Outbox.Status.SENT


def test_it_searches_and_filters_attempts(admin_client: Client, sent_and_failed: tuple[Outbox, Outbox]) -> None:
    _sent, failed = sent_and_failed
    url = "/admin/notifier/deliveryattempt/"
    response = admin_client.get(url, {"outcome__exact": "permanent"})
    assert [row.outbox_id for row in response.context["cl"].result_list] == [failed.pk]
    assert failed.family.head_insuree is not None and failed.family.head_insuree.chf_id is not None
    response = admin_client.get(url, {"q": failed.family.head_insuree.chf_id})
    assert [row.outbox_id for row in response.context["cl"].result_list] == [failed.pk]
    assert DeliveryAttempt.objects.count() == 2


def test_it_refuses_a_rate_limit_that_is_not_positive(admin_client: Client) -> None:
    response = admin_client.post(f"{ACCOUNTS}add/", form_data(rate_limit_per_second="0"))
    assert "must be more than 0 messages per second" in response.content.decode()
    assert not ProviderAccount.objects.exists()
