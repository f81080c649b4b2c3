"""Issue 14.4: inbound STOP withdraws consent through the consent service, with provenance for every consent change
(admin user, inbound SMS, service API, family service); detection then skips the family as `opted_out`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifier import services
from notifier.detection import run_detection
from notifier.inbound import is_stop
from notifier.models import ConsentChange, Decision, Family, FamilyNotification, Policy, ProviderAccount
from notifier.providers.http_generic import twilio_signature
from tests import gateway as fake
from tests.factories import change_form_data
from tests.gateway import GatewayServer

FORM = "application/x-www-form-urlencoded"
YES = {"approvalOfNotification": True, "languageOfNotification": "sw"}


@pytest.fixture
def at(db: None, gateway: GatewayServer) -> ProviderAccount:
    config = {"username": fake.AT_USERNAME, "api_key": fake.AT_KEY, "base_url": gateway.url}
    return ProviderAccount.objects.create(name="AT", provider="AfricasTalking", config=config)


def inbound_url(account: ProviderAccount) -> str:
    return reverse("notifier:inbound", args=[account.callback_token])


def at_inbound(client: Client, account: ProviderAccount, sender: str, text: str) -> Any:
    fields = {"from": sender, "to": "15522", "text": text, "date": "2026-11-28 09:00:00", "id": "in-1", "linkId": "l"}
    return client.post(inbound_url(account), data=urlencode(fields), content_type=FORM)


def approval(family: Family) -> bool:
    return bool(FamilyNotification.objects.get(family=family, validity_to__isnull=True).approval_of_sms)


@pytest.mark.parametrize("text", ["STOP", " stop ", "Stop\n", "ACHA", "acha", "ARRET", "arrêt", "ARRÊT", " Arrêt  "])
def test_every_stop_keyword_counts_in_any_case_and_spacing(text: str) -> None:
    assert is_stop(text, ["STOP", "ACHA", "ARRET", "ARRÊT"])


@pytest.mark.parametrize("text", ["STOP please", "stopp", "", "SIMAMA", "ST OP"])
def test_other_texts_are_not_a_stop(text: str) -> None:
    assert not is_stop(text, ["STOP", "ACHA", "ARRET", "ARRÊT"])


@pytest.mark.django_db
def test_a_stop_withdraws_consent_with_the_sms_as_provenance(
    client: Client, at: ProviderAccount, make_family: Callable[..., Family]
) -> None:
    family = make_family(head_phone="0712345678", consent=YES)
    answer = at_inbound(client, at, "+255712345678", " Acha ")
    assert answer.status_code == 200
    assert answer.json() == {"received": 1, "outcomes": [{"kind": "stop", "families": [family.pk], "confirmed": False}]}
    assert approval(family) is False
    change = ConsentChange.objects.filter(family=family).first()
    assert change is not None
    assert (change.source, change.action, change.approval, change.language) == ("inbound_sms", "withdrawn", False, "sw")
    assert (change.phone, change.text, change.detail) == ("+255712345678", " Acha ", "account AT")


@pytest.mark.django_db
def test_a_number_of_several_families_withdraws_each(
    client: Client, at: ProviderAccount, make_family: Callable[..., Family]
) -> None:
    first = make_family(head_phone="0712345678", consent=YES)
    second = make_family(head_phone="+255 712 345 678", consent=YES)
    other = make_family(head_phone="0754000111", consent=YES)
    answer = at_inbound(client, at, "+255712345678", "STOP")
    assert answer.json()["outcomes"][0]["families"] == [first.pk, second.pk]
    assert (approval(first), approval(second), approval(other)) == (False, False, True)


@pytest.mark.django_db
def test_an_unknown_number_is_logged_not_an_error(
    client: Client, at: ProviderAccount, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="notifier.inbound"):
        answer = at_inbound(client, at, "+255799000111", "STOP")
    assert answer.status_code == 200
    assert answer.json()["outcomes"] == [{"kind": "unknown_number", "families": [], "confirmed": False}]
    assert "matches no family" in caplog.text
    assert "+255799000111" not in caplog.text  # numbers are masked in logs
    assert not ConsentChange.objects.filter(source="inbound_sms").exists()


@pytest.mark.django_db
def test_the_confirmation_goes_back_in_the_family_language(
    client: Client, at: ProviderAccount, gateway: GatewayServer, make_family: Callable[..., Family], settings: Any
) -> None:
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "stop_confirmation": {"en": "You will get no more SMS.", "sw": "Hutapokea SMS tena."},
    }
    make_family(head_phone="0712345678", consent=YES)
    answer = at_inbound(client, at, "+255712345678", "stop")
    assert answer.json()["outcomes"][0]["confirmed"] is True
    [seen] = gateway.received
    assert (seen.form["to"], seen.form["message"]) == ("+255712345678", "Hutapokea SMS tena.")


@pytest.mark.django_db
def test_twilio_inbound_is_signed_and_answered_with_empty_twiml(
    client: Client, gateway: GatewayServer, make_family: Callable[..., Family]
) -> None:
    config = {
        "account_sid": fake.TWILIO_SID,
        "auth_token": fake.TWILIO_TOKEN,
        "from_number": fake.TWILIO_FROM,
        "base_url": gateway.url,
    }
    account = ProviderAccount.objects.create(name="Twilio", provider="Twilio", config=config)
    family = make_family(head_phone="0712345678", consent=YES)
    fields = {"MessageSid": "SM1", "From": "+255712345678", "To": fake.TWILIO_FROM, "Body": "ARRÊT"}
    url = inbound_url(account)
    unsigned = client.post(url, data=urlencode(fields), content_type=FORM)
    assert unsigned.status_code == 403
    assert approval(family) is True
    signature = twilio_signature(fake.TWILIO_TOKEN, "http://testserver" + url, fields)
    signed = client.post(url, data=urlencode(fields), content_type=FORM, headers={"X-Twilio-Signature": signature})
    assert (signed.status_code, signed.content, signed["Content-Type"]) == (200, b"<Response/>", "text/xml")
    assert approval(family) is False


@pytest.mark.django_db
def test_infobip_inbound_json(client: Client, gateway: GatewayServer, make_family: Callable[..., Family]) -> None:
    account = ProviderAccount.objects.create(
        name="IB", provider="Infobip", config={"base_url": gateway.url, "api_key": fake.INFOBIP_KEY}
    )
    family = make_family(head_phone="0712345678", consent=YES)
    body = {
        "results": [
            {
                "messageId": "m-1",
                "from": "255712345678",
                "to": "4477",
                "text": "Stop",
                "cleanText": "Stop",
                "receivedAt": "2026-11-28T09:00:00.000+0000",
            }
        ],
        "messageCount": 1,
        "pendingMessageCount": 0,
    }
    answer = client.post(inbound_url(account), data=json.dumps(body), content_type="application/json")
    assert answer.json()["outcomes"] == [{"kind": "stop", "families": [family.pk], "confirmed": False}]
    assert approval(family) is False


@pytest.mark.django_db
def test_every_consent_change_has_its_provenance(make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": False, "languageOfNotification": "en"})
    services.update_family_notification_policy(family.uuid, {"approvalOfNotification": True})
    services.update_family(family.uuid, contributions={services.CONTRIBUTION_KEY: {"languageOfNotification": "fr"}})
    services.delete_family(family.uuid)
    history = list(
        ConsentChange.objects.filter(family=family)
        .order_by("changed_at", "id")
        .values_list("source", "action", "approval", "language")
    )
    assert history == [
        ("family_service", "created", False, "en"),
        ("service_api", "updated", True, "en"),
        ("family_service", "updated", True, "fr"),
        ("family_service", "retired", False, "fr"),
    ]


@pytest.mark.django_db
def test_an_admin_edit_records_the_user_and_the_family_page_shows_the_history(
    admin_client: Client, make_family: Callable[..., Family]
) -> None:
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "en"})
    url = reverse("admin:openimis_family_change", args=[family.pk])
    data = change_form_data(admin_client, url)
    data.pop("notification-0-approval_of_sms", None)  # untick: withdraw
    assert admin_client.post(url, data).status_code == 302
    change = ConsentChange.objects.filter(family=family).first()
    assert change is not None
    assert (change.source, change.action, change.user) == ("admin", "withdrawn", User.objects.get(username="admin"))
    page = admin_client.get(url).content.decode()
    assert "consent history (provenance)" in page.lower()
    assert "Admin user" in page
    listing = admin_client.get(reverse("admin:notifier_consentchange_changelist") + "?source=admin")
    assert listing.status_code == 200


@pytest.mark.django_db
def test_detection_tells_opted_out_from_never_consented(
    client: Client,
    at: ProviderAccount,
    make_family: Callable[..., Family],
    make_policy: Callable[..., Policy],
    settings: Any,
) -> None:
    settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": {"expiration_of_policy": True}}
    today = timezone.localdate()
    stopped = make_family(head_phone="0712345678", consent=YES)
    never = make_family(head_phone="0754000111", consent={"approvalOfNotification": False})
    stopped_policy = make_policy(stopped, expiry_date=today)
    never_policy = make_policy(never, expiry_date=today)
    at_inbound(client, at, "+255712345678", "STOP")
    result = run_detection("expiration_of_policy", today)
    assert result.skipped == {"no_consent": 1, "opted_out": 1}
    reasons = dict(Decision.objects.values_list("policy_id", "reason"))
    assert reasons == {stopped_policy.pk: "opted_out", never_policy.pk: "no_consent"}
    # Consent given again afterwards: the family is eligible again, the STOP no longer decides.
    services.update_family_notification_policy(stopped.uuid, {"approvalOfNotification": True})
    assert run_detection("expiration_of_policy", today).queued == 1
