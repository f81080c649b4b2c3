"""GET /api/policy_notification/metrics/: Prometheus metrics computed from the database at scrape time.

Nothing is counted in process memory, so every web process answers the same (gunicorn's workers, several
containers) and a restart loses nothing. Access: a signed-in staff user, or `Authorization: Bearer <token>` with
NOTIFIER_METRICS_TOKEN (for Prometheus). Each family is one indexed aggregate query.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterator

from django.db import connection
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from notifier import coordination
from notifier.models import DeliveryAttempt, DispatcherRun, Outbox, ProviderAccount
from notifier.settings import get_settings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
LATENCY_WINDOW = dt.timedelta(hours=24)
BREAKER_STATES = ("closed", "half-open", "open")


def _account_names() -> dict[int | None, str]:
    names: dict[int | None, str] = {account.pk: account.name for account in ProviderAccount.objects.all()}
    names[None] = ""
    return names


def _latency() -> tuple[list[tuple[str, float]], float]:
    """Buckets (cumulative) and sum of queue-to-sent seconds of the messages queued in the last 24 hours."""
    since = timezone.now() - LATENCY_WINDOW
    filters = ", ".join(
        f"count(*) FILTER (WHERE extract(epoch FROM sent_at - created_at) <= {bound})" for bound in LATENCY_BUCKETS
    )
    sql = (
        f"SELECT {filters}, count(*), coalesce(sum(extract(epoch FROM sent_at - created_at)), 0) "  # noqa: S608
        "FROM notifier_outbox WHERE created_at >= %s AND status = 'sent' AND sent_at IS NOT NULL"
    )
    if connection.vendor != "postgresql":  # SQLite (embedded mode): the same in Python
        rows = Outbox.objects.filter(created_at__gte=since, status=Outbox.Status.SENT, sent_at__isnull=False)
        seconds = [(row.sent_at - row.created_at).total_seconds() for row in rows if row.sent_at is not None]
        counts = [sum(1 for value in seconds if value <= bound) for bound in LATENCY_BUCKETS]
        total, summed = len(seconds), sum(seconds)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, [since])
            row = cursor.fetchone()
        counts, total, summed = list(row[: len(LATENCY_BUCKETS)]), row[-2], float(row[-1])
    buckets = [(str(bound), float(count)) for bound, count in zip(LATENCY_BUCKETS, counts, strict=True)]
    buckets.append(("+Inf", float(total)))
    return buckets, summed


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        names = _account_names()

        outbox = GaugeMetricFamily(
            "notifier_outbox_messages",
            "Outbox rows by notification type, status and the account that last handled them.",
            labels=["type", "status", "provider"],
        )
        backlog = {status: 0 for status in Outbox.Status.values}
        sent = CounterMetricFamily(
            "notifier_messages_sent", "Messages sent, by notification type and account.", labels=["type", "provider"]
        )
        for notification_type, status, account_id, count in (
            Outbox.objects.values_list("notification_type", "status", "provider_account")
            .annotate(n=Count("*"))
            .order_by()
        ):
            provider = names.get(account_id, str(account_id))
            outbox.add_metric([notification_type, status, provider], count)
            backlog[status] += count
            if status == Outbox.Status.SENT:
                sent.add_metric([notification_type, provider], count)
        yield outbox
        yield sent

        gauge = GaugeMetricFamily("notifier_outbox_backlog", "Outbox rows by status.", labels=["status"])
        for status, count in backlog.items():
            gauge.add_metric([status], count)
        yield gauge

        oldest = Outbox.objects.filter(status=Outbox.Status.PENDING).aggregate(oldest=Min("next_attempt_at"))["oldest"]
        yield GaugeMetricFamily(
            "notifier_oldest_due_pending_age_seconds",
            "How long the oldest pending row has been due (0: none due).",
            value=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        )

        attempts = CounterMetricFamily(
            "notifier_delivery_attempts", "Delivery attempts by account and outcome.", labels=["provider", "outcome"]
        )
        for account_id, outcome, count in (
            DeliveryAttempt.objects.values_list("provider_account", "outcome").annotate(n=Count("*")).order_by()
        ):
            attempts.add_metric([names.get(account_id, str(account_id)), outcome], count)
        yield attempts

        buckets, summed = _latency()
        yield GaugeHistogramMetricFamily(
            "notifier_delivery_latency_seconds",
            "Seconds from queued to sent, of the messages queued in the last 24 hours.",
            buckets=buckets,
            gsum_value=summed,
        )

        breaker = GaugeMetricFamily(
            "notifier_circuit_breaker_state",
            "1 for the account's current circuit breaker state.",
            labels=["provider", "state"],
        )
        for account_id, name in names.items():
            if account_id is None:
                continue
            current = coordination.breaker_state(account_id)
            for state in BREAKER_STATES:
                breaker.add_metric([name, state], 1.0 if state == current else 0.0)
        yield breaker

        last = DispatcherRun.objects.aggregate(last=Max("completed_at"))["last"]
        yield GaugeMetricFamily(
            "notifier_last_dispatcher_run_timestamp_seconds",
            "When the last dispatcher run completed (Unix time; 0: never).",
            value=last.timestamp() if last else 0.0,
        )
        yield GaugeMetricFamily(
            "notifier_last_dispatcher_run_age_seconds",
            "Seconds since the last dispatcher run completed (-1: never).",
            value=(now - last).total_seconds() if last else -1.0,
        )


def _authorised(request: HttpRequest) -> bool:
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        return True
    token = get_settings().metrics_token
    given = request.headers.get("Authorization", "")
    return bool(token) and given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip(), token)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorised(request):
        response = HttpResponse(
            "metrics: sign in as staff or send Authorization: Bearer <NOTIFIER_METRICS_TOKEN>\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="notifier metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE)
