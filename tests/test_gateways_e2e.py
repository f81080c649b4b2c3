"""Issue 14 end to end: a demo cycle through an Africa's Talking account (local fake) → delivery receipts arrive for
some messages → one family answers STOP → its later message is skipped `opted_out`, and its consent history shows
the SMS as provenance."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from notifier.cycle import run_cycle
from notifier.demo import load_demo
from notifier.detection import run_detection
from notifier.models import ConsentChange, Decision, FamilyNotification, Outbox, ProviderAccount
from notifier.types import NOTIFICATION_TYPES
from tests import gateway as fake
from tests.gateway import GatewayServer

NOW = dt.datetime(2026, 11, 28, 7, 30, tzinfo=dt.UTC)  # 10:30 in Dar es Salaam: outside the quiet hours
TODAY = dt.date(2026, 11, 28)
FORM = "application/x-www-form-urlencoded"


@pytest.mark.django_db
@pytest.mark.quiet_hours  # the default quiet hours stay on: 10:30 is outside them
def test_demo_cycle_receipts_and_a_stop(client: Client, gateway: GatewayServer, settings: Any) -> None:
    settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": dict.fromkeys(NOTIFICATION_TYPES, True)}
    account = ProviderAccount.objects.create(
        name="AT",
        provider="AfricasTalking",
        config={"username": fake.AT_USERNAME, "api_key": fake.AT_KEY, "base_url": gateway.url},
    )
    with time_machine.travel(NOW, tick=False):
        load_demo(today=TODAY, families=80)
        run_cycle(TODAY)
    sent = list(Outbox.objects.filter(status="sent").order_by("id"))
    assert len(sent) >= 10
    assert len(gateway.received) == len(sent)
    assert all(row.provider_reference.startswith("ATXid_") for row in sent)

    receipts = reverse("notifier:receipt", args=[account.callback_token])
    for row in sent[:4]:
        fields = {"id": row.provider_reference, "status": "Success", "phoneNumber": row.recipient}
        assert client.post(receipts, data=urlencode(fields), content_type=FORM).status_code == 200
    failed = {"id": sent[4].provider_reference, "status": "Rejected", "failureReason": "DeliveryFailure"}
    assert client.post(receipts, data=urlencode(failed), content_type=FORM).status_code == 200
    statuses = dict(Outbox.objects.values_list("id", "status"))
    assert [statuses[row.pk] for row in sent[:5]] == ["delivered"] * 4 + ["undelivered"]
    assert all(statuses[row.pk] == "sent" for row in sent[5:])  # no receipt yet: still sent

    # A family reminded to renew answers STOP: its expiry-day message, due later, is not sent.
    reminded = next(row for row in sent if row.notification_type == "need_for_renewal")
    family_id, policy = reminded.family_id, reminded.policy
    inbound = reverse("notifier:inbound", args=[account.callback_token])
    fields = {"from": reminded.recipient, "to": "15522", "text": "  Stop ", "id": "in-9", "date": "2026-11-28"}
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        answer = client.post(inbound, data=urlencode(fields), content_type=FORM).json()
    assert answer["outcomes"][0]["kind"] == "stop"
    assert family_id in answer["outcomes"][0]["families"]
    assert not FamilyNotification.objects.get(family_id=family_id, validity_to__isnull=True).approval_of_sms

    assert policy.expiry_date is not None
    with time_machine.travel(NOW + dt.timedelta(days=(policy.expiry_date - TODAY).days), tick=False):
        result = run_detection("expiration_of_policy", policy.expiry_date)
    decision = Decision.objects.get(policy=policy, notification_type="expiration_of_policy")
    assert (decision.outcome, decision.reason) == ("skipped", "opted_out")
    assert result.skipped.get("opted_out", 0) >= 1
    assert not Outbox.objects.filter(policy=policy, notification_type="expiration_of_policy").exists()

    history = list(
        ConsentChange.objects.filter(family_id=family_id)
        .order_by("changed_at", "id")
        .values_list("source", "action", "phone", "text")
    )
    assert history[0][:2] == ("family_service", "created")
    assert history[-1] == ("inbound_sms", "withdrawn", reminded.recipient, "  Stop ")
