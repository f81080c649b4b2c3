from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from notifier import services
from notifier.models import (
    ApiToken,
    Decision,
    DeliveryAttempt,
    DetectionRun,
    DispatcherRun,
    FakeGatewayMessage,
    Family,
    FamilyNotification,
    FamilyPhone,
    Insuree,
    Officer,
    Outbox,
    Policy,
    Product,
    ProviderAccount,
    ReportFile,
)
from tests.factories import change_form_data

# Unmanaged models (the report's permission anchor) have no table and no changelist; their pages have own tests.
REGISTERED = sorted((m for m in admin.site._registry if m._meta.managed), key=lambda model: model._meta.label)


# Records written by the service, detection, delivery or a command: shown, never added by hand.
NO_ADD_PAGE = {
    "notifier.ApiToken",
    "notifier.ConsentChange",
    "notifier.Decision",
    "notifier.DeliveryAttempt",
    "notifier.DetectionRun",
    "notifier.DispatcherRun",
    "notifier.FakeGatewayMessage",
    "notifier.Outbox",
    "notifier.ReportFile",
    "openimis.Family",
    "openimis.Insuree",
}


def admin_url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def staff(db: None) -> Client:
    user = User.objects.create_superuser("boss", "boss@example.org", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def populated(
    make_family: Callable[..., Family], make_policy: Callable[..., Policy], officer: Officer, product: Product
) -> dict[str, Any]:
    """At least one row of every model that has an admin, so that each change page is exercised."""
    family = make_family(head_phone="0712345678", members=["0756123456"], consent={"approvalOfNotification": True})
    policy = make_policy(family, officer=officer)
    account = ProviderAccount.objects.create(name="Files", provider="text", config={"DestinationFolder": "/tmp/x"})
    outbox = Outbox.objects.create(
        policy=policy,
        notification_type="expiration_of_policy",
        event_date=timezone.localdate(),
        family=family,
        recipient="+255712345678",
    )
    DeliveryAttempt.objects.create(outbox=outbox, provider_account=account, provider="text", outcome="success")
    Decision.objects.create(
        policy=policy, notification_type="expiration_of_policy", event_date=timezone.localdate(), outcome="queued"
    )
    today = timezone.localdate()
    DetectionRun.objects.create(
        notification_type="expiration_of_policy", run_date=today, window_start=today, window_end=today
    )
    DispatcherRun.objects.create(
        run_date=today, completed_at=timezone.now(), notification_types=["expiration_of_policy"]
    )
    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    CrontabSchedule.objects.create(minute="0", hour="8,12,16,20")
    SolarSchedule.objects.create(event="sunrise", latitude=-6.8, longitude=39.28)
    ClockedSchedule.objects.create(clocked_time=timezone.now())
    PeriodicTask.objects.create(name="demo task", task="notifier.tasks.x", interval=interval)
    FakeGatewayMessage.objects.create(recipients="255712345678", message="Hello", sender_id="CHF")
    ReportFile.objects.create(format="pdf", query={"districtUuid": str(family.uuid)})
    Group.objects.create(name="Scheme staff")
    clerk = User.objects.create_user("clerk", password="pw")
    ApiToken.objects.create(user=clerk, name="accounting system", prefix="ntf_abcdefgh", digest="0" * 64)
    return {"family": family, "policy": policy}


def an_object_of(model: type[Model]) -> Model:
    found = model._default_manager.order_by("pk").first()
    assert found is not None, f"no {model._meta.label} row: add one to the `populated` fixture"
    return found


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_renders_every_admin_page_for_staff(staff: Client, populated: dict[str, Any], model: type[Model]) -> None:
    changelist = staff.get(admin_url(model, "changelist"))
    assert changelist.status_code == 200
    assert changelist.context["cl"].result_count >= 1

    obj = an_object_of(model)
    change = staff.get(admin_url(model, "change", obj.pk))
    assert change.status_code == 200
    assert change.context["original"].pk == obj.pk

    add = staff.get(admin_url(model, "add"))
    assert add.status_code == (403 if model._meta.label in NO_ADD_PAGE else 200)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_it_sends_an_anonymous_user_to_the_login_page(populated: dict[str, Any], model: type[Model]) -> None:
    client = Client()
    obj = an_object_of(model)
    for url in (admin_url(model, "changelist"), admin_url(model, "change", obj.pk), admin_url(model, "add")):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


@pytest.mark.django_db
def test_it_refuses_a_logged_in_user_who_is_not_staff() -> None:
    user = User.objects.create_user("clerk", password="pw")
    client = Client()
    client.force_login(user)
    response = client.get(admin_url(Family, "changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_it_filters_families_by_eligibility_mode(staff: Client, make_family: Callable[..., Family]) -> None:
    both = make_family(head_phone="0712345678", consent={"approvalOfNotification": True})
    approval_only = make_family(head_phone="n/a", consent={"approvalOfNotification": True})
    phone_only = make_family(head_phone=None, members=["0756123456"], consent={"approvalOfNotification": False})
    neither = make_family(head_phone="", consent={"approvalOfNotification": True})
    FamilyNotification.objects.filter(family=neither).delete()
    expected = {"1": both, "2": approval_only, "3": phone_only, "4": neither}

    everything = staff.get(admin_url(Family, "changelist"))
    assert {f.pk for f in everything.context["cl"].result_list} == {f.pk for f in expected.values()}
    for mode, family in expected.items():
        response = staff.get(admin_url(Family, "changelist"), {"mode": mode})
        assert response.status_code == 200
        assert [f.pk for f in response.context["cl"].result_list] == [family.pk], f"mode {mode}"


@pytest.mark.parametrize("mode", ["9", "-1", "x"])
def test_it_answers_a_bad_mode_without_a_server_error(
    staff: Client, make_family: Callable[..., Family], mode: str
) -> None:
    make_family()
    response = staff.get(admin_url(Family, "changelist"), {"mode": mode})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_it_saves_the_consent_inline_through_the_service(staff: Client, make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": False, "languageOfNotification": "en"})
    url = admin_url(Family, "change", family.pk)
    data = change_form_data(staff, url)
    assert data["notification-0-language_of_sms"] == "en"
    data["notification-0-approval_of_sms"] = "on"
    data["notification-0-language_of_sms"] = "sw"
    later = timezone.now() + dt.timedelta(minutes=5)

    with time_machine.travel(later, tick=False):
        response = staff.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    row = FamilyNotification.objects.get(family=family)
    assert (row.approval_of_sms, row.language_of_sms) == (True, "sw")
    assert row.validity_from == later  # the service stamps the change; the inline shows validity as read-only


def test_it_refuses_an_unknown_language_in_the_consent_inline(
    staff: Client, make_family: Callable[..., Family]
) -> None:
    family = make_family(consent={"approvalOfNotification": False, "languageOfNotification": "en"})
    url = admin_url(Family, "change", family.pk)
    data = change_form_data(staff, url)
    data["notification-0-language_of_sms"] = "de"

    response = staff.post(url, data)

    assert response.status_code == 200
    assert "language_of_sms" in response.context["inline_admin_formsets"][0].formset.errors[0]
    assert FamilyNotification.objects.get(family=family).language_of_sms == "en"


def test_it_adds_consent_to_a_family_without_a_row_through_the_inline(
    staff: Client, make_family: Callable[..., Family]
) -> None:
    family = make_family()
    FamilyNotification.objects.filter(family=family).delete()
    url = admin_url(Family, "change", family.pk)
    data = change_form_data(staff, url)
    data.update(
        {
            "notification-TOTAL_FORMS": "1",
            "notification-0-family": family.pk,
            "notification-0-approval_of_sms": "on",
            "notification-0-language_of_sms": "fr",
        }
    )

    response = staff.post(url, data)

    assert response.status_code == 302
    row = FamilyNotification.objects.get(family=family)
    assert (row.approval_of_sms, row.language_of_sms, row.validity_to) == (True, "fr", None)


def test_it_keeps_a_history_row_when_staff_edit_an_insuree(staff: Client, make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone=None, consent={"approvalOfNotification": True})
    head = Insuree.objects.current().get(family=family, head=True)
    url = admin_url(Insuree, "change", head.pk)
    data = change_form_data(staff, url)
    data["phone"] = "0712345678"

    response = staff.post(url, data)

    assert response.status_code == 302
    assert Insuree.objects.current().get(pk=head.pk).phone == "0712345678"
    history = Insuree.objects.get(legacy_id=head.pk)
    assert history.phone is None and history.validity_to is not None
    assert FamilyPhone.objects.get(family=family).phone == "+255712345678"


def test_it_keeps_a_history_row_when_staff_edit_a_policy(
    staff: Client, make_family: Callable[..., Family], make_policy: Callable[..., Policy]
) -> None:
    policy = make_policy(make_family(), status=Policy.Status.IDLE)
    url = admin_url(Policy, "change", policy.pk)
    data = change_form_data(staff, url)
    data["status"] = str(Policy.Status.ACTIVE)

    response = staff.post(url, data)

    assert response.status_code == 302
    current = Policy.objects.current().get(pk=policy.pk)
    history = Policy.objects.get(legacy_id=policy.pk)
    assert (current.status, history.status) == (Policy.Status.ACTIVE, Policy.Status.IDLE)
    assert history.validity_to == current.validity_from


def test_it_shows_history_rows_read_only(staff: Client, make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone=None)
    head = Insuree.objects.current().get(family=family, head=True)
    services.update_insuree(head.uuid, {"phone": "0712345678"})
    history = Insuree.objects.get(legacy_id=head.pk)

    response = staff.get(admin_url(Insuree, "change", history.pk))

    assert response.status_code == 200
    assert response.context["has_change_permission"] is False


def test_it_deletes_a_family_through_the_service(staff: Client, make_family: Callable[..., Family]) -> None:
    family = make_family(head_phone="0712345678", consent={"approvalOfNotification": True})

    response = staff.post(admin_url(Family, "delete", family.pk), {"post": "yes"})

    assert response.status_code == 302
    retired = Family.objects.get(pk=family.pk)
    assert retired.validity_to is not None
    assert not Insuree.objects.current().filter(family=family).exists()
    consent = FamilyNotification.objects.get(family=family)
    assert consent.validity_to is not None and consent.approval_of_sms is False
