"""GET /api/policy_notification/health/: database, broker, and the beat heartbeat (200 healthy, 503 with reasons).

The heartbeat is judged against the schedule, not a fixed age: once the last scheduled hour is more than
NOTIFIER_HEARTBEAT_GRACE_SECONDS behind us, a dispatcher run must have completed since that hour. So a beat that
stopped at noon is noticed at noon plus the grace, not only the next morning. A run counts only when detection
completed for every enabled type; when the newest run failed detection for a type, health is red and names the
type and the error (until a complete run follows).
A fresh install (no dispatcher run yet) is healthy with a note until its first scheduled run is due.
`?checks=database,broker` limits the verdict to those checks (a container probe that must not depend on beat).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from notifier.locks import redis_client
from notifier.models import DispatcherRun
from notifier.schedule import ScheduleError, derive_schedule
from notifier.settings import get_config, get_settings


@dataclass
class Check:
    ok: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **({"reason": self.reason} if self.reason else {}), **self.details}


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return Check(False, f"database unreachable ({_error(exc)})")
    return Check(True, details={"vendor": connection.vendor})


def check_broker() -> Check:
    details: dict[str, Any] = {}
    if settings.EMBEDDED_BROKER:
        details["broker"] = "embedded (in-process)"
    else:
        from kombu import Connection

        try:
            with Connection(settings.CELERY_BROKER_URL, connect_timeout=3) as broker:
                broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        except Exception as exc:
            return Check(False, f"broker unreachable ({_error(exc)})")
        details["broker"] = "reachable"
    client = redis_client()
    if client is None:
        details["redis"] = "not configured (in-process locks)"
    else:
        try:
            client.ping()
        except Exception as exc:
            return Check(False, f"redis unreachable ({_error(exc)})", details)
        finally:
            client.close()
        details["redis"] = "reachable"
    return Check(True, details=details)


def check_beat(now: dt.datetime | None = None) -> Check:
    now = now or timezone.now()
    tz = ZoneInfo(settings.TIME_ZONE)
    try:
        schedule = derive_schedule()
    except ScheduleError as exc:
        return Check(False, f"schedule misconfigured ({exc})")
    grace = dt.timedelta(seconds=get_settings().heartbeat_grace_seconds)
    due_since = schedule.last_tick_before(now - grace, tz)
    details: dict[str, Any] = {"hours": list(schedule.hours), "timezone": tz.key, "due_since": due_since.isoformat()}
    enabled = set(get_config().enabled_types())
    try:
        last, failed = _last_runs(enabled)
    except Exception as exc:
        return Check(False, f"dispatcher runs unreadable ({_error(exc)})", details)
    if failed is not None:
        # The newest finished run failed detection for some type, and no complete run came after it.
        details.update(failed_at=failed.completed_at.isoformat() if failed.completed_at else None, error=failed.error)
        return Check(
            False, f"detection failed in the dispatcher run of {failed.run_date}: {_one_line(failed.error)}", details
        )
    if last is None or last.completed_at is None:
        installed = installed_at()
        # A fresh install has no dispatcher run at all; one that ran only some types (--type) is not fresh.
        if installed is not None and due_since < installed and not DispatcherRun.objects.exists():
            # A fresh install: no scheduled hour (plus grace) has passed since migrate, so nothing is missed yet.
            first_due = min(tick for tick in schedule.ticks_around(installed, tz) if tick > installed)
            details["note"] = (
                f"no dispatcher run yet; the first is due at {first_due.astimezone(tz):%Y-%m-%d %H:%M %Z} "
                f"(installed {installed.astimezone(tz):%Y-%m-%d %H:%M %Z})"
            )
            return Check(True, details=details)
        return Check(False, "no dispatcher run has completed yet", details)
    age = now - last.completed_at
    details.update(last_completed_at=last.completed_at.astimezone(tz).isoformat(), age_seconds=int(age.total_seconds()))
    if last.completed_at < due_since:
        return Check(False, f"no dispatcher run completed since the run due at {due_since:%Y-%m-%d %H:%M %Z}", details)
    return Check(True, details=details)


def _one_line(error: str) -> str:
    return "; ".join(line.strip() for line in error.splitlines() if line.strip())


_RUNS_LOOKED_AT = 50


def _last_runs(enabled: set[str]) -> tuple[DispatcherRun | None, DispatcherRun | None]:
    """(the newest run that completed detection for every enabled type, the newest failed run after it or None).

    A run counts for the heartbeat only when detection completed for every enabled type: no error, and the types
    it ran cover the enabled ones (a `send_notifications --type X` run does not stand for the whole beat).
    """
    finished = DispatcherRun.objects.filter(completed_at__isnull=False).order_by("-completed_at")
    failed: DispatcherRun | None = None
    for run in finished.only("run_date", "completed_at", "notification_types", "error")[:_RUNS_LOOKED_AT]:
        if run.error:
            failed = failed or run
            continue
        if enabled <= set(run.notification_types or []):
            return run, failed
    return None, failed


def installed_at() -> dt.datetime | None:
    """When this database got the notifier's tables (its first migration): the start of the beat's duty."""
    from django.db.migrations.recorder import MigrationRecorder

    return (
        MigrationRecorder.Migration.objects.filter(app="notifier")
        .order_by("applied")
        .values_list("applied", flat=True)
        .first()
    )


CHECKS: dict[str, Callable[[], Check]] = {"database": check_database, "broker": check_broker, "beat": check_beat}


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    requested = request.GET.get("checks", "")
    names = [name.strip() for name in requested.split(",") if name.strip()] or list(CHECKS)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        return JsonResponse(
            {"error": f"checks: unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}"}, status=400
        )
    results = {name: CHECKS[name]() for name in names}
    reasons = [f"{name}: {result.reason}" for name, result in results.items() if not result.ok]
    body = {
        "status": "unhealthy" if reasons else "healthy",
        "reasons": reasons,
        "notes": [f"{name}: {result.details['note']}" for name, result in results.items() if "note" in result.details],
        "checks": {name: result.as_dict() for name, result in results.items()},
    }
    return JsonResponse(body, status=503 if reasons else 200)
