"""The admin's landing page: what was sent in the last 30 days and why not, what the next 30 days will cost, the
gateways' state, the schedule, and the messages that need a person. Each figure is one indexed aggregate query
(or a read of the ForecastDay summary table), so the page stays fast on a scheme with a million policies."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.utils import timezone

from notifier import coordination, quiet, types
from notifier.charts import Series, stacked_columns
from notifier.humanize import plain_excerpt
from notifier.models import Decision, DeliveryAttempt, DispatcherRun, ForecastDay, Outbox, ProviderAccount
from notifier.providers.registry import UnknownProviderError, get_provider
from notifier.schedule import ScheduleError, derive_schedule
from notifier.settings import get_config
from notifier.types import NOTIFICATION_TYPES

DAYS = 30
HISTORY_CACHE_SECONDS = 60
Status = Outbox.Status
# Outbox statuses as the dashboard counts them, with their colours.
BUCKETS: list[tuple[str, str, tuple[str, ...]]] = [
    ("delivered", "#1b5e20", (Status.DELIVERED,)),  # sent, and the gateway's receipt says it reached the phone
    ("sent", "#66bb6a", (Status.SENT,)),  # sent, no receipt (yet)
    ("undelivered", "#6a1b9a", (Status.UNDELIVERED,)),  # sent, the receipt says it did not arrive
    ("queued", "#1565c0", (Status.PENDING, Status.SENDING)),
    ("failed", "#c62828", (Status.FAILED,)),
    ("unknown", "#ef6c00", (Status.UNKNOWN,)),
    ("cancelled", "#757575", (Status.CANCELLED,)),
]
BUCKET_OF = {status: name for name, _color, statuses in BUCKETS for status in statuses}
REASON_LABELS = dict(Decision.Reason.choices)


@dataclass
class TypeHistory:
    notification_type: str
    label: str
    totals: dict[str, int]
    skipped: list[tuple[str, int]]
    chart: str = ""


@dataclass
class AccountState:
    account: ProviderAccount
    breaker: str
    last_success: dt.datetime | None
    attempts_24h: int
    failures_24h: int
    rate_limit: float
    price: str

    @property
    def error_rate(self) -> str:
        if not self.attempts_24h:
            return "—"
        return f"{100 * self.failures_24h / self.attempts_24h:.0f}% of {self.attempts_24h}"


@dataclass
class Dashboard:
    days: list[dt.date]
    history: list[TypeHistory]
    history_chart: str
    forecast_chart: str
    forecast_messages: int
    forecast_segments: int
    forecast_cost: str
    forecast_computed_at: dt.datetime | None
    accounts: list[AccountState]
    next_run: dt.datetime | None
    schedule_note: str
    last_run: DispatcherRun | None
    attention: list[dict[str, Any]]
    attention_total: int
    enabled_types: list[str] = field(default_factory=list)
    quiet_hours_note: str = ""  # which dispatcher runs' messages the quiet hours hold until the morning


def _history(start: dt.datetime, days: list[dt.date], tz: ZoneInfo) -> tuple[list[TypeHistory], str]:
    per_day: dict[str, dict[str, list[int]]] = {
        name: {bucket: [0] * len(days) for bucket, _c, _s in BUCKETS} for name in NOTIFICATION_TYPES
    }
    position = {day: index for index, day in enumerate(days)}
    rows = (
        Outbox.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values_list("day", "notification_type", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    for day, notification_type, status, count in rows:
        if day in position and notification_type in per_day:
            per_day[notification_type][BUCKET_OF.get(status, "queued")][position[day]] += count
    skipped: dict[str, list[tuple[str, int]]] = defaultdict(list)
    reasons = (
        Decision.objects.filter(outcome=Decision.Outcome.SKIPPED, last_evaluated_at__gte=start)
        .values_list("notification_type", "reason")
        .annotate(n=Count("*"))
        .order_by("notification_type", "-n")
    )
    for notification_type, reason, count in reasons:
        skipped[notification_type].append((str(REASON_LABELS.get(reason, reason or "—")), count))
    history = []
    for name in NOTIFICATION_TYPES:
        buckets = per_day[name]
        item = TypeHistory(
            notification_type=name,
            label=types.label(name),
            totals={bucket: sum(values) for bucket, values in buckets.items()},
            skipped=skipped.get(name, []),
        )
        item.chart = stacked_columns(
            days,
            [Series(bucket, color, buckets[bucket]) for bucket, color, _s in BUCKETS],
            title=item.label,
            width=310,
            height=120,
            legend=False,
            chart_id=f"history-{name}",
        )
        history.append(item)
    overall = [
        Series(bucket, color, [sum(per_day[name][bucket][i] for name in NOTIFICATION_TYPES) for i in range(len(days))])
        for bucket, color, _s in BUCKETS
    ]
    chart = stacked_columns(
        days, overall, title="Messages by day, all types", width=860, height=200, chart_id="history"
    )
    return history, chart


def _price_account() -> ProviderAccount | None:
    """The account that would carry most messages: the first enabled SMS gateway by priority."""
    for account in ProviderAccount.objects.filter(enabled=True).order_by("priority", "id"):
        try:
            if get_provider(account.provider).delivers_sms:
                return account
        except UnknownProviderError:
            continue
    return None


def _forecast(today: dt.date) -> tuple[str, int, int, str, dt.datetime | None]:
    days = [today + dt.timedelta(days=offset) for offset in range(DAYS)]
    rows = ForecastDay.objects.filter(day__gte=today, day__lt=today + dt.timedelta(days=DAYS))
    messages: dict[str, list[int]] = {name: [0] * DAYS for name in NOTIFICATION_TYPES}
    total_messages = total_segments = 0
    computed_at = None
    for row in rows:
        messages[row.notification_type][(row.day - today).days] += row.messages
        total_messages += row.messages
        total_segments += row.segments
        computed_at = max(computed_at or row.computed_at, row.computed_at)
    palette = ["#1565c0", "#2e7d32", "#6a1b9a", "#c62828", "#ef6c00", "#00838f"]
    chart = stacked_columns(
        days,
        [
            Series(types.label(name), palette[index % len(palette)], messages[name])
            for index, name in enumerate(NOTIFICATION_TYPES)
        ],
        title="Next 30 days: messages by type",
        width=860,
        height=210,
        chart_id="forecast",
    )
    account = _price_account()
    if account is None or account.price_per_segment is None:
        cost = "set a price per segment on the SMS provider account to see the cost"
    else:
        amount = (Decimal(total_segments) * account.price_per_segment).quantize(Decimal("0.01"))
        cost = f"{amount:,} {account.currency} (at {account.price_per_segment} per segment, {account.name})"
    return chart, total_messages, total_segments, cost, computed_at


def _accounts(now: dt.datetime) -> list[AccountState]:
    default_rate = get_config().rate_limit_per_second
    since = now - dt.timedelta(hours=24)
    last_success = dict(
        DeliveryAttempt.objects.filter(outcome=DeliveryAttempt.Outcome.SUCCESS)
        .values_list("provider_account")
        .annotate(last=Max("started_at"))
        .order_by()
    )
    recent: dict[int, tuple[int, int]] = {}
    for account_id, total, failed in (
        DeliveryAttempt.objects.filter(started_at__gte=since, provider_account__isnull=False)
        .values_list("provider_account")
        .annotate(total=Count("*"), failed=Count("id", filter=~Q(outcome=DeliveryAttempt.Outcome.SUCCESS)))
        .order_by()
    ):
        recent[account_id] = (total, failed)
    states = []
    for account in ProviderAccount.objects.order_by("priority", "id"):
        total, failed = recent.get(account.pk, (0, 0))
        price = f"{account.price_per_segment} {account.currency}" if account.price_per_segment is not None else "—"
        states.append(
            AccountState(
                account=account,
                breaker=coordination.breaker_state(account.pk),
                last_success=last_success.get(account.pk),
                attempts_24h=total,
                failures_24h=failed,
                rate_limit=account.rate_limit_per_second or default_rate,
                price=price,
            )
        )
    return states


def _next_run(now: dt.datetime, tz: ZoneInfo) -> tuple[dt.datetime | None, str]:
    try:
        schedule = derive_schedule()
    except ScheduleError as exc:
        return None, f"schedule misconfigured: {exc}"
    upcoming = [tick for tick in schedule.ticks_around(now, tz) if tick > now]
    hours = ", ".join(f"{hour}:00" for hour in schedule.hours)
    return (min(upcoming) if upcoming else None), f"every day at {hours} ({tz.key})"


def _attention(limit: int = 15) -> tuple[list[dict[str, Any]], int]:
    wanted = [Status.FAILED, Status.UNKNOWN]
    total = Outbox.objects.filter(status__in=wanted).count()
    rows = []
    for outbox in (
        Outbox.objects.filter(status__in=wanted)
        .select_related("provider_account")
        .order_by("-updated_at", "-id")[:limit]
    ):
        rows.append(
            {
                "outbox": outbox,
                "type": types.label(outbox.notification_type),
                "status": outbox.get_status_display(),
                "error": plain_excerpt(outbox.last_error, 120),
            }
        )
    return rows, total


def build_dashboard(now: dt.datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    tz = ZoneInfo(settings.TIME_ZONE)
    today = now.astimezone(tz).date()
    days = [today - dt.timedelta(days=DAYS - 1 - offset) for offset in range(DAYS)]
    start = timezone.make_aware(dt.datetime.combine(days[0], dt.time.min), tz)
    # The month's aggregates read ~0.7 s of index at a million policies (bench/README.md): kept for a minute, so
    # that the page a resend or cancel redirects to is instant. The attention list below is always live.
    key = f"notifier:dashboard:history:{start.isoformat()}"
    cached = cache.get(key)
    if cached is None:
        cached = _history(start, days, tz)
        cache.set(key, cached, HISTORY_CACHE_SECONDS)
    history, history_chart = cached
    forecast_chart, messages, segments, cost, computed_at = _forecast(today)
    next_run, schedule_note = _next_run(now, tz)
    attention, attention_total = _attention()
    config = get_config()
    try:
        quiet_note = quiet.forecast_note(config.quiet_hours, derive_schedule(config).hours, settings.TIME_ZONE)
    except ScheduleError:
        quiet_note = ""
    return Dashboard(
        days=days,
        history=history,
        history_chart=history_chart,
        forecast_chart=forecast_chart,
        forecast_messages=messages,
        forecast_segments=segments,
        forecast_cost=cost,
        forecast_computed_at=computed_at,
        accounts=_accounts(now),
        next_run=next_run,
        schedule_note=schedule_note,
        last_run=DispatcherRun.objects.order_by("-started_at").first(),
        attention=attention,
        attention_total=attention_total,
        enabled_types=[types.label(name) for name in config.enabled_types()],
        quiet_hours_note=quiet_note,
    )


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_active or not request.user.has_perm("notifier.view_outbox"):
        return {}  # the figures are about messages: only for those who may read the outbox
    return {"dashboard": build_dashboard(), "can_act": request.user.has_perm("notifier.change_outbox")}
