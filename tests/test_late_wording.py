"""Issue 14.6: true when late — a message sent after its event date never says "today"; the shipped templates
read right on time and late in English, French and Swahili; delivery words a held message for the day it leaves."""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import Callable

import pytest
import time_machine
from django.apps import apps
from django.test import Client
from django.urls import reverse

from notifier.delivery.runner import deliver
from notifier.models import Family, NotificationTemplate, Outbox, Policy, ProviderAccount
from notifier.rendering import render_template
from tests.factories import ega_account
from tests.gateway import GatewayServer, Reply

VALUES: dict[str, str | dt.date | None] = {
    "InsuranceID": "123456789",
    "Name": "Amani Juma",
    "ProductCode": "BASIC",
    "ProductName": "Basic",
    "EffectiveDate": dt.date(2020, 8, 19),
    "ExpiryDate": dt.date(2020, 8, 19),
}
TODAY_WORDS = {"en": "today", "fr": "aujourd'hui", "sw": "leo"}

EXPECTED = {
    ("expiration_of_policy", "en", False): "Dear Amani Juma, your Basic policy (123456789) expired today, "
    "19 Aug 2020. Renew it now to be covered again.",
    ("expiration_of_policy", "en", True): "Dear Amani Juma, your Basic policy (123456789) expired on 19 Aug 2020. "
    "Renew it now to be covered again.",
    ("expiration_of_policy", "fr", False): "Bonjour Amani Juma, votre police Basic (123456789) a expiré "
    "aujourd'hui, le 19/08/2020. Renouvelez-la pour retrouver votre couverture.",
    ("expiration_of_policy", "fr", True): "Bonjour Amani Juma, votre police Basic (123456789) a expiré le "
    "19/08/2020. Renouvelez-la pour retrouver votre couverture.",
    ("expiration_of_policy", "sw", False): "Ndugu Amani Juma, bima yako ya Basic (123456789) imeisha leo, "
    "19/08/2020. Ihuishe sasa ili uweze kutibiwa tena.",
    ("expiration_of_policy", "sw", True): "Ndugu Amani Juma, bima yako ya Basic (123456789) iliisha tarehe "
    "19/08/2020. Ihuishe sasa ili uweze kutibiwa tena.",
    ("starting_of_policy", "en", False): "Dear Amani Juma, your Basic cover (123456789) starts today, 19 Aug 2020, "
    "and runs until 19 Aug 2020.",
    ("starting_of_policy", "en", True): "Dear Amani Juma, your Basic cover (123456789) started on 19 Aug 2020 and "
    "runs until 19 Aug 2020.",
    ("starting_of_policy", "fr", False): "Bonjour Amani Juma, votre couverture Basic (123456789) commence "
    "aujourd'hui, le 19/08/2020, jusqu'au 19/08/2020.",
    ("starting_of_policy", "fr", True): "Bonjour Amani Juma, votre couverture Basic (123456789) a commencé le "
    "19/08/2020, jusqu'au 19/08/2020.",
    ("starting_of_policy", "sw", False): "Ndugu Amani Juma, bima yako ya Basic (123456789) inaanza kutumika leo, "
    "19/08/2020, hadi 19/08/2020.",
    ("starting_of_policy", "sw", True): "Ndugu Amani Juma, bima yako ya Basic (123456789) ilianza kutumika tarehe "
    "19/08/2020, hadi 19/08/2020.",
}


@pytest.mark.django_db
@pytest.mark.parametrize(("notification_type", "language", "late"), list(EXPECTED))
def test_shipped_templates_read_right_on_time_and_late(notification_type: str, language: str, late: bool) -> None:
    template = NotificationTemplate.objects.get(notification_type=notification_type, language_id=language)
    message = render_template(template, VALUES, late=late)
    assert message.text == EXPECTED[(notification_type, language, late)]
    assert message.encoding == "GSM-7"


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "fr", "sw"])
def test_no_shipped_template_says_today_when_late(language: str) -> None:
    for template in NotificationTemplate.objects.filter(language_id=language):
        late = render_template(template, VALUES, late=True).text
        assert f" {TODAY_WORDS[language]}" not in late.lower(), template


@pytest.fixture
def ega(db: None, gateway: GatewayServer) -> ProviderAccount:
    return ega_account("ega", gateway.url)


@pytest.fixture
def expiring(make_family: Callable[..., Family], make_policy: Callable[..., Policy]) -> Outbox:
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "fr"})
    policy = make_policy(family, effective_date=dt.date(2019, 8, 20), expiry_date=dt.date(2020, 8, 19))
    return Outbox.objects.create(
        policy=policy,
        family=family,
        notification_type="expiration_of_policy",
        event_date=dt.date(2020, 8, 19),
        recipient="+255712345678",
        language="fr",
    )


def sent_text(gateway: GatewayServer) -> str:
    return str(json.loads(json.loads(gateway.received[-1].body)["data"])["message"])


@pytest.mark.django_db
def test_a_catch_up_two_days_late_says_the_date_not_today(
    gateway: GatewayServer, ega: ProviderAccount, expiring: Outbox
) -> None:
    with time_machine.travel(dt.datetime(2020, 8, 21, 9, 0, tzinfo=dt.UTC), tick=False):
        Outbox.objects.filter(pk=expiring.pk).update(next_attempt_at=dt.datetime(2020, 8, 21, 9, 0, tzinfo=dt.UTC))
        assert deliver(expiring.pk) == "sent"
    assert "a expiré le 19/08/2020." in sent_text(gateway)
    assert "aujourd'hui" not in sent_text(gateway)


@pytest.mark.django_db
def test_a_message_rendered_on_its_day_and_held_overnight_is_reworded(
    gateway: GatewayServer, ega: ProviderAccount, expiring: Outbox
) -> None:
    on_the_day = dt.datetime(2020, 8, 19, 9, 0, tzinfo=dt.UTC)
    gateway.queue(Reply(status=503, body=b"busy"))
    with time_machine.travel(on_the_day, tick=False):
        Outbox.objects.filter(pk=expiring.pk).update(next_attempt_at=on_the_day)
        assert deliver(expiring.pk) == "pending"
    expiring.refresh_from_db()
    assert "aujourd'hui, le 19/08/2020" in expiring.text  # the words of the day it was tried
    next_day = dt.datetime(2020, 8, 20, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(next_day, tick=False):
        Outbox.objects.filter(pk=expiring.pk).update(next_attempt_at=next_day)
        assert deliver(expiring.pk) == "sent"
    assert "a expiré le 19/08/2020." in sent_text(gateway)
    expiring.refresh_from_db()
    assert "aujourd'hui" not in expiring.text


@pytest.mark.django_db
def test_the_migration_leaves_an_edited_template_alone() -> None:
    edited = NotificationTemplate.objects.get(notification_type="expiration_of_policy", language_id="en")
    NotificationTemplate.objects.filter(pk=edited.pk).update(text="Mine: {Name}", late_text="", edited=True)
    fresh = NotificationTemplate.objects.get(notification_type="starting_of_policy", language_id="sw")
    NotificationTemplate.objects.filter(pk=fresh.pk).update(late_text="")
    importlib.import_module("notifier.migrations.0016_late_wording").ship_late_variants(apps, None)
    edited.refresh_from_db()
    fresh.refresh_from_db()
    assert (edited.text, edited.late_text) == ("Mine: {Name}", "")
    assert fresh.late_text.startswith("Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) ilianza")


@pytest.mark.django_db
def test_the_preview_shows_both_wordings(admin_client: Client) -> None:
    template = NotificationTemplate.objects.get(notification_type="expiration_of_policy", language_id="en")
    answer = admin_client.get(
        reverse("admin:notifier_notificationtemplate_preview"),
        {"text": template.text, "late_text": template.late_text, "language": "en"},
    ).json()
    assert answer["text"] == (
        "Dear Emmanuela Nyamizi Mwakalukwa-Kapinga, your Community Health Fund Family Plus policy (123456789012) "
        "expired today, 31 Dec 2027. Renew it now to be covered again."
    )
    assert answer["late_text"] == (
        "Dear Emmanuela Nyamizi Mwakalukwa-Kapinga, your Community Health Fund Family Plus policy (123456789012) "
        "expired on 31 Dec 2027. Renew it now to be covered again."
    )
    bad = admin_client.get(
        reverse("admin:notifier_notificationtemplate_preview"), {"text": "Hi", "late_text": "{Nope}", "language": "en"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("late_text: unknown placeholder {Nope}")
