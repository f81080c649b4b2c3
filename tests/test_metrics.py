"""Prometheus metrics computed from the database at scrape time, behind staff sign-in or a bearer token."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifier import coordination
from notifier.models import DeliveryAttempt, DispatcherRun, Outbox, ProviderAccount
from tests.factories import bare_outboxes

URL = "/api/policy_notification/metrics/"


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    settings.NOTIFIER_METRICS_TOKEN = "scrape-t0ken"


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.django_db
def test_it_refuses_anonymous_scrapes_and_a_wrong_token(client: Client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="notifier metrics"'
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


@pytest.mark.django_db
def test_it_counts_messages_attempts_latency_breakers_and_the_last_run(client: Client):
    account = ProviderAccount.objects.create(name="ega", provider="eGASMSGateway")
    rows = bare_outboxes(4)
    now = timezone.now()
    for row, status, latency in zip(rows, ["sent", "sent", "failed", "pending"], [3, 120, None, None], strict=True):
        Outbox.objects.filter(pk=row.pk).update(
            status=status,
            provider_account=account if status != "pending" else None,
            created_at=now - dt.timedelta(minutes=10),
            sent_at=now - dt.timedelta(minutes=10) + dt.timedelta(seconds=latency) if latency else None,
            next_attempt_at=now - dt.timedelta(seconds=30),
        )
        if status != "pending":
            outcome = "success" if status == "sent" else "permanent"
            DeliveryAttempt.objects.create(
                outbox=row, provider_account=account, provider="eGASMSGateway", outcome=outcome
            )
    DispatcherRun.objects.create(run_date=now.date(), started_at=now, completed_at=now - dt.timedelta(seconds=600))
    for _ in range(5):
        coordination.record_failure(account.pk)

    response = client.get(URL, HTTP_AUTHORIZATION="Bearer scrape-t0ken")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(response.content.decode())
    assert found[("notifier_messages_sent_total", (("provider", "ega"), ("type", "expiration_of_policy")))] == 2
    assert found[("notifier_outbox_backlog", (("status", "pending"),))] == 1
    assert found[("notifier_outbox_backlog", (("status", "failed"),))] == 1
    assert found[("notifier_delivery_attempts_total", (("outcome", "success"), ("provider", "ega")))] == 2
    assert found[("notifier_delivery_attempts_total", (("outcome", "permanent"), ("provider", "ega")))] == 1
    assert found[("notifier_delivery_latency_seconds_bucket", (("le", "5.0"),))] == 1
    assert found[("notifier_delivery_latency_seconds_bucket", (("le", "300.0"),))] == 2
    assert found[("notifier_delivery_latency_seconds_gsum", ())] == pytest.approx(123, abs=0.01)
    assert found[("notifier_circuit_breaker_state", (("provider", "ega"), ("state", "open")))] == 1
    assert found[("notifier_circuit_breaker_state", (("provider", "ega"), ("state", "closed")))] == 0
    assert 599 <= found[("notifier_last_dispatcher_run_age_seconds", ())] < 700
    assert 29 <= found[("notifier_oldest_due_pending_age_seconds", ())] < 120


@pytest.mark.django_db
def test_a_staff_session_may_read_them(admin_client: Client):
    found = samples(admin_client.get(URL).content.decode())
    assert found[("notifier_last_dispatcher_run_age_seconds", ())] == -1
