"""The admin's landing page: sections, the last 30 days per type, the forecast and its cost, the gateways, the
schedule, and one-click resend / cancel of the messages that need attention."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from notifier.dashboard import build_dashboard
from notifier.humanize import plain_excerpt
from notifier.models import Decision, DeliveryAttempt, DispatcherRun, ForecastDay, Outbox, ProviderAccount
from tests.factories import bare_outboxes

DAR = ZoneInfo("Africa/Dar_es_Salaam")
NOW = dt.datetime(2026, 11, 28, 13, 0, tzinfo=DAR)


@pytest.fixture(autouse=True)
def _scheme(settings):
    settings.TIME_ZONE = "Africa/Dar_es_Salaam"
    settings.SCHEDULED_TASK = []


@pytest.fixture
def scheme(db):
    """Six outbox rows over three days, two skipped decisions, an account with attempts, a forecast."""
    account = ProviderAccount.objects.create(
        name="ega", provider="eGASMSGateway", priority=1, price_per_segment=Decimal("18.5"), currency="TZS"
    )
    rows = bare_outboxes(6)
    statuses = ["delivered", "sent", "undelivered", "failed", "unknown", "pending"]  # receipts for two
    days_ago = [0, 0, 1, 1, 2, 40]
    for row, status, ago in zip(rows, statuses, days_ago, strict=True):
        Outbox.objects.filter(pk=row.pk).update(
            status=status,
            created_at=NOW - dt.timedelta(days=ago),
            updated_at=NOW - dt.timedelta(minutes=ago),
            provider_account=account,
            last_error="<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>" if status == "failed" else "",
        )
    for row, outcome in [(rows[0], "success"), (rows[1], "success"), (rows[3], "transient"), (rows[4], "unknown")]:
        DeliveryAttempt.objects.create(
            outbox=row, provider_account=account, provider="eGASMSGateway", outcome=outcome, started_at=NOW
        )
    for row, reason in [(rows[0], "no_consent"), (rows[1], "no_consent"), (rows[2], "no_valid_phone")]:
        Decision.objects.create(
            policy=row.policy,
            notification_type="activation_of_policy",
            event_date=NOW.date(),
            outcome="skipped",
            reason=reason,
            last_evaluated_at=NOW,
        )
    ForecastDay.objects.create(day=NOW.date(), notification_type="expiration_of_policy", messages=10, segments=12)
    ForecastDay.objects.create(
        day=NOW.date() + dt.timedelta(days=3), notification_type="need_for_renewal", messages=4, segments=8
    )
    DispatcherRun.objects.create(run_date=NOW.date(), started_at=NOW - dt.timedelta(hours=1), completed_at=NOW)
    return account, rows


def test_it_counts_the_last_30_days_per_type_and_the_forecast_with_its_cost(scheme):
    board = build_dashboard(NOW)
    expiration = next(item for item in board.history if item.notification_type == "expiration_of_policy")
    assert expiration.totals == {
        "delivered": 1,
        "sent": 1,
        "undelivered": 1,
        "queued": 0,
        "failed": 1,
        "unknown": 1,
        "cancelled": 0,
    }
    activation = next(item for item in board.history if item.notification_type == "activation_of_policy")
    assert activation.skipped == [("No consent", 2), ("No valid phone", 1)]
    assert board.days[0] == dt.date(2026, 10, 30) and board.days[-1] == dt.date(2026, 11, 28)
    assert board.forecast_messages == 14
    assert board.forecast_segments == 20
    assert board.forecast_cost == "370.00 TZS (at 18.5000 per segment, ega)"
    [state] = board.accounts
    assert (state.breaker, state.attempts_24h, state.failures_24h, state.error_rate) == ("closed", 4, 2, "50% of 4")
    assert state.last_success == NOW
    assert board.next_run == dt.datetime(2026, 11, 28, 16, 0, tzinfo=DAR)
    assert board.attention_total == 2
    assert [row["outbox"].status for row in board.attention] == ["failed", "unknown"]
    assert board.attention[0]["error"] == "502 Bad Gateway nginx"
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart"' in board.history_chart
    assert "<title>2026-11-27: 1 failed</title>" in board.history_chart


def test_the_admin_index_is_the_dashboard_grouped_in_sections(scheme, admin_client: Client):
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get("/admin/").content.decode()
    assert "<title>Dashboard | Policy notifier</title>" in page
    assert '<a href="/admin/">Policy notifier</a>' in page
    assert 'id="history"' in page and 'id="forecast"' in page
    sections = re.findall(r'<caption>\s*<a href="[^"]*" class="section"[^>]*>([^<]+)</a>', page)
    assert sections[:7] == [
        "Consent &amp; families",
        "Messages &amp; templates",
        "Delivery",
        "Schedule",
        "openIMIS data",
        "Reports",
        "Users &amp; access",
    ]
    assert "Next dispatcher run: <b>2026-11-28 16:00</b>" in page
    assert "502 Bad Gateway nginx" in page and "<h1>502" not in page


def test_it_resends_and_cancels_with_one_click(scheme, admin_client: Client):
    _account, rows = scheme
    failed, unknown = rows[3], rows[4]
    response = admin_client.post(f"/admin/dashboard/outbox/{failed.pk}/", {"action": "resend"}, follow=True)
    assert f"Message #{failed.pk} queued again" in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.last_error) == ("pending", 0, "")
    admin_client.post(f"/admin/dashboard/outbox/{unknown.pk}/", {"action": "cancel"})
    unknown.refresh_from_db()
    assert unknown.status == "cancelled"
    again = admin_client.post(f"/admin/dashboard/outbox/{unknown.pk}/", {"action": "cancel"}, follow=True)
    assert "was not changed: it is no longer failed or unknown" in again.content.decode()
    assert admin_client.get(f"/admin/dashboard/outbox/{unknown.pk}/").status_code == 405


def test_staff_without_outbox_rights_see_no_figures(scheme, client: Client, django_user_model):
    user = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(user)
    page = client.get("/admin/").content.decode()
    assert 'id="dashboard"' not in page
    assert client.post(f"/admin/dashboard/outbox/{scheme[1][3].pk}/", {"action": "resend"}).status_code == 403


def test_internal_records_are_read_only(scheme, admin_client: Client):
    _account, rows = scheme
    decision = Decision.objects.first()
    assert decision is not None
    assert admin_client.get("/admin/notifier/decision/add/").status_code == 403
    page = admin_client.get(f"/admin/notifier/decision/{decision.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    outbox_page = admin_client.get(f"/admin/notifier/outbox/{rows[3].pk}/change/").content.decode()
    assert 'name="status"' not in outbox_page and 'name="last_error"' not in outbox_page
    assert "502 Bad Gateway nginx" in outbox_page
    listing = admin_client.get("/admin/notifier/outbox/").content.decode()
    assert '<span class="badge status-unknown">Outcome unknown</span>' in listing
    assert "Expired today" in listing


def test_plain_excerpt_of_an_html_error_body():
    body = "<!DOCTYPE html><html><head><style>p{}</style><title>x</title></head><body><p>Service &amp; co down</p>"
    assert plain_excerpt(body) == "Service & co down"
    assert plain_excerpt("gateway said: a < b") == "gateway said: a < b"
    assert plain_excerpt("x" * 50, 10) == "xxxxxxxxx…"


@pytest.mark.django_db
def test_the_forecast_is_recomputed_on_demand(admin_client: Client, make_family, make_policy, settings):
    from django.utils import timezone

    settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": {"expiration_of_policy": True}}
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "en"})
    make_policy(family, expiry_date=timezone.localdate() + dt.timedelta(days=2))
    response = admin_client.post("/admin/dashboard/forecast/", follow=True)
    assert "Forecast recomputed." in response.content.decode()
    rows = list(ForecastDay.objects.filter(messages__gt=0).values_list("day", "notification_type", "messages"))
    assert rows == [(timezone.localdate() + dt.timedelta(days=2), "expiration_of_policy", 1)]
    assert ForecastDay.objects.get(messages=1).segments == 2  # the shipped English text's worst case (long names)


@pytest.mark.quiet_hours
def test_it_says_which_runs_the_quiet_hours_hold(scheme):
    board = build_dashboard(NOW)
    assert board.quiet_hours_note == (
        "Quiet hours 20:00-08:00 (Africa/Dar_es_Salaam): nothing is sent then. Messages of the dispatcher run(s) at "
        "20:00 go out at 08:00 + 60 min (the next morning for evening runs)."
    )
