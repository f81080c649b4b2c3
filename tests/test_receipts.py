"""Issue 14.3: delivery receipts per provider account — a sent message becomes delivered or undelivered with the
time and the gateway's reason; an unknown outcome is resolved by its receipt and never resent. Each preset's
receipt format is posted to the account's callback URL as its gateway would."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifier.delivery.runner import deliver
from notifier.delivery.store import hand_out_due
from notifier.models import Family, FamilyNotification, Outbox, ProviderAccount
from notifier.providers.http_generic import twilio_signature
from tests import gateway as fake
from tests.factories import bare_outbox
from tests.gateway import GatewayServer, Reply

FORM = "application/x-www-form-urlencoded"


def account(provider: str, config: dict[str, Any]) -> ProviderAccount:
    return ProviderAccount.objects.create(name=provider, provider=provider, priority=10, config=config)


def at_account(url: str) -> ProviderAccount:
    return account("AfricasTalking", {"username": fake.AT_USERNAME, "api_key": fake.AT_KEY, "base_url": url})


def twilio_account(url: str) -> ProviderAccount:
    config = {
        "account_sid": fake.TWILIO_SID,
        "auth_token": fake.TWILIO_TOKEN,
        "from_number": fake.TWILIO_FROM,
        "base_url": url,
    }
    return account("Twilio", config)


def infobip_account(url: str) -> ProviderAccount:
    return account("Infobip", {"base_url": url, "api_key": fake.INFOBIP_KEY, "sender": "CHF"})


def receipts_url(acc: ProviderAccount, query: str = "") -> str:
    return reverse("notifier:receipt", args=[acc.callback_token]) + (f"?{query}" if query else "")


def post_form(client: Client, url: str, fields: dict[str, str], **headers: str) -> Any:
    return client.post(url, data=urlencode(fields), content_type=FORM, headers=headers)


def sent_row(acc: ProviderAccount) -> Outbox:
    row = bare_outbox("Your policy expires today.")
    assert deliver(row.pk) == "sent"
    row.refresh_from_db()
    assert row.provider_account_id == acc.pk
    return row


@pytest.mark.django_db
def test_africastalking_success_report_makes_the_message_delivered(client: Client, gateway: GatewayServer) -> None:
    acc = at_account(gateway.url)
    row = sent_row(acc)
    assert row.provider_reference == "ATXid_00000001"  # stored at send time: receipts are matched on it
    before = timezone.now()
    fields = {"id": "ATXid_00000001", "status": "Success", "phoneNumber": "+255712345678", "networkCode": "64002"}
    answer = post_form(client, receipts_url(acc), fields)
    assert answer.status_code == 200
    assert answer.json() == {"received": 1, "changes": {"delivered": 1}}
    row.refresh_from_db()
    assert (row.status, row.receipt_status, row.receipt_reason) == ("delivered", "Success", "")
    assert row.receipt_at is not None and row.receipt_at >= before
    # A late, reordered report does not undo a final one.
    post_form(client, receipts_url(acc), {"id": "ATXid_00000001", "status": "Failed"})
    row.refresh_from_db()
    assert row.status == "delivered"


@pytest.mark.django_db
def test_africastalking_failure_report_keeps_the_reason(client: Client, gateway: GatewayServer) -> None:
    acc = at_account(gateway.url)
    row = sent_row(acc)
    fields = {"id": row.provider_reference, "status": "Failed", "failureReason": "UserInBlacklist", "retryCount": "0"}
    assert post_form(client, receipts_url(acc), fields).json()["changes"] == {"undelivered": 1}
    row.refresh_from_db()
    assert (row.status, row.receipt_status, row.receipt_reason) == ("undelivered", "Failed", "UserInBlacklist")


@pytest.mark.django_db
def test_africastalking_report_resolves_an_unknown_outcome_by_the_number(
    client: Client, gateway: GatewayServer
) -> None:
    acc = at_account(gateway.url)
    row = bare_outbox("Your policy expires today.")
    Outbox.objects.filter(pk=row.pk).update(status="unknown", provider_account=acc, last_error="read timeout")
    fields = {"id": "ATXid_99", "status": "Success", "phoneNumber": "+255712345678"}
    assert post_form(client, receipts_url(acc), fields).json()["changes"] == {"delivered": 1}
    row.refresh_from_db()
    assert (row.status, row.provider_reference) == ("delivered", "ATXid_99")
    assert gateway.received == []  # resolved by the receipt: never resent


@pytest.mark.django_db
def test_twilio_signed_status_callback_moves_the_message(client: Client, gateway: GatewayServer, settings: Any) -> None:
    settings.NOTIFIER_PUBLIC_URL = "http://testserver"
    acc = twilio_account(gateway.url)
    row = sent_row(acc)
    [seen] = gateway.received
    callback = seen.form["StatusCallback"]
    assert callback == f"http://testserver{receipts_url(acc, f'ref=outbox-{row.pk}')}"
    fields = {
        "MessageSid": row.provider_reference,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "AccountSid": fake.TWILIO_SID,
        "To": "+255712345678",
    }
    signature = twilio_signature(fake.TWILIO_TOKEN, callback, fields)
    forged = post_form(
        client, callback.removeprefix("http://testserver"), fields, X_Twilio_Signature="AAAA" + signature[4:]
    )
    assert forged.status_code == 403
    assert forged.json() == {"error": "signature does not verify"}
    row.refresh_from_db()
    assert row.status == "sent"
    answer = post_form(client, callback.removeprefix("http://testserver"), fields, X_Twilio_Signature=signature)
    assert answer.status_code == 200
    row.refresh_from_db()
    assert (row.status, row.receipt_status, row.receipt_reason) == ("undelivered", "undelivered", "30003")


def test_twilio_signature_matches_the_published_examples() -> None:
    """Twilio's documentation example: auth token 12345, its URL and POST parameters, and the signatures given."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    other = {key: value.replace("+14158675309", "+14158675310") for key, value in params.items()}
    assert twilio_signature("12345", url, other) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


@pytest.mark.django_db
def test_twilio_accepted_callback_resolves_an_unknown_row_to_sent(client: Client, gateway: GatewayServer) -> None:
    acc = twilio_account(gateway.url)
    row = bare_outbox("Hello")
    Outbox.objects.filter(pk=row.pk).update(status="unknown", provider_account=acc)
    url = receipts_url(acc, f"ref=outbox-{row.pk}")
    fields = {"MessageSid": "SM77", "MessageStatus": "sent", "To": "+255712345678"}
    signature = twilio_signature(fake.TWILIO_TOKEN, "http://testserver" + url, fields)
    assert post_form(client, url, fields, X_Twilio_Signature=signature).json()["changes"] == {"sent": 1}
    row.refresh_from_db()
    assert (row.status, row.provider_reference, row.receipt_status) == ("sent", "SM77", "sent")
    assert row.pk not in hand_out_due(100, dt.timedelta(0))


@pytest.mark.django_db
def test_infobip_json_reports_name_our_reference(client: Client, gateway: GatewayServer) -> None:
    acc = infobip_account(gateway.url)
    first, second = sent_row(acc), sent_row(acc)
    assert first.provider_reference == f"outbox-{first.pk}"
    report = {
        "results": [
            {
                "bulkId": "bulk-1",
                "messageId": f"outbox-{first.pk}",
                "to": "255712345678",
                "status": {
                    "groupId": 3,
                    "groupName": "DELIVERED",
                    "id": 5,
                    "name": "DELIVERED_TO_HANDSET",
                    "description": "Message delivered to handset",
                },
                "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": False},
            },
            {
                "messageId": f"outbox-{second.pk}",
                "to": "255712345678",
                "status": {"groupId": 2, "groupName": "UNDELIVERABLE", "id": 9, "name": "UNDELIVERABLE_NOT_DELIVERED"},
                "error": {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 27, "name": "EC_ABSENT_SUBSCRIBER"},
            },
        ]
    }
    answer = client.post(receipts_url(acc), data=json.dumps(report), content_type="application/json")
    assert answer.json() == {"received": 2, "changes": {"delivered": 1, "undelivered": 1}}
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.receipt_status) == ("delivered", "DELIVERED_TO_HANDSET")
    assert (second.status, second.receipt_reason) == ("undelivered", "EC_ABSENT_SUBSCRIBER")


@pytest.mark.django_db
def test_bad_callbacks_are_clear_errors_never_500(client: Client, gateway: GatewayServer) -> None:
    at, ib = at_account(gateway.url), infobip_account(gateway.url)
    unknown = client.post("/api/policy_notification/receipts/not-a-token-of-any-account/", data={})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown callback URL"})
    missing = post_form(client, receipts_url(at), {"status": "Success"})
    assert (missing.status_code, missing.json()) == (400, {"error": "id: missing from the delivery report"})
    broken = client.post(receipts_url(ib), data="{results", content_type="application/json")
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("body: not valid JSON")
    shape = client.post(receipts_url(ib), data='{"results": {}}', content_type="application/json")
    assert (shape.status_code, shape.json()) == (400, {"error": "results: a JSON list is expected"})
    stray = post_form(client, receipts_url(at), {"id": "ATXid_nobody", "status": "Success"})
    assert stray.json() == {"received": 1, "changes": {"unmatched": 1}}


@pytest.mark.django_db
def test_outbox_admin_shows_the_receipt(admin_client: Client, client: Client, gateway: GatewayServer) -> None:
    acc = at_account(gateway.url)
    row = sent_row(acc)
    post_form(client, receipts_url(acc), {"id": row.provider_reference, "status": "Failed", "failureReason": "X9"})
    page = admin_client.get(reverse("admin:notifier_outbox_change", args=[row.pk])).content.decode()
    assert "Not delivered (receipt)" in page
    assert "X9" in page
    listing = admin_client.get(reverse("admin:notifier_outbox_changelist") + "?status=undelivered").content.decode()
    assert f">{row.pk}<" in listing
    account_page = admin_client.get(reverse("admin:notifier_provideraccount_change", args=[acc.pk])).content.decode()
    assert f"/api/policy_notification/receipts/{acc.callback_token}/" in account_page
    assert f"/api/policy_notification/inbound/{acc.callback_token}/" in account_page


@pytest.mark.django_db
def test_new_callback_urls_revoke_the_old_ones(admin_client: Client, gateway: GatewayServer) -> None:
    acc = at_account(gateway.url)
    old = receipts_url(acc)
    changelist = reverse("admin:notifier_provideraccount_changelist")
    answer = admin_client.post(changelist, {"action": "renew_callback_urls", "_selected_action": [acc.pk]})
    assert answer.status_code == 302
    acc.refresh_from_db()
    assert receipts_url(acc) != old
    assert post_form(admin_client, old, {"id": "x", "status": "Success"}).status_code == 404
    assert post_form(admin_client, receipts_url(acc), {"id": "x", "status": "Success"}).status_code == 200


@pytest.mark.django_db
def test_a_general_http_account_reads_receipts_and_replies_by_its_configured_fields(
    client: Client, gateway: GatewayServer, make_family: Callable[..., Family]
) -> None:
    config = {
        "url": gateway.url + "/send",
        "reference_field": "id",
        "receipt_id_field": "msg.id",
        "receipt_status_field": "msg.state",
        "receipt_reason_field": "msg.why",
        "delivered_values": ["DELIVRD"],
        "undelivered_values": ["UNDELIV", "REJECTD"],
        "inbound_from_field": "sender",
        "inbound_text_field": "body",
    }
    acc = account("HttpProvider", config)
    gateway.queue(Reply(body=b'{"id": "gw-42"}'))
    row = sent_row(acc)
    assert row.provider_reference == "gw-42"
    report = {"msg": {"id": "gw-42", "state": "UNDELIV", "why": "absent subscriber"}}
    answer = client.post(receipts_url(acc), data=json.dumps(report), content_type="application/json")
    assert answer.json() == {"received": 1, "changes": {"undelivered": 1}}
    row.refresh_from_db()
    assert (row.status, row.receipt_reason) == ("undelivered", "absent subscriber")

    family = make_family(head_phone="0712345678", consent={"approvalOfNotification": True})
    inbound = reverse("notifier:inbound", args=[acc.callback_token])
    post_form(client, inbound, {"sender": "255712345678", "body": "STOP"})
    assert FamilyNotification.objects.get(family=family, validity_to__isnull=True).approval_of_sms is False
