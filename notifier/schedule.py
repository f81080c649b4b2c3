"""When the dispatcher runs (SPEC §8), and writing that into django-celery-beat (with the outbox sweeper and the
nightly full refresh of the family phones).

The hours come from the seed's trigger_* keys, unless settings.SCHEDULED_TASK holds an active entry for the
dispatcher, whose `hour` wins. Entries may be flat (`{"task": ..., "hour": ...}`) or shaped like openIMIS's
scheduler jobs (`{"method": ..., "kwargs": {"hour": ...}}`); `"active": false` (or `"enabled": false`) turns one off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from notifier.config import NotifierConfig
from notifier.settings import get_config, get_settings

DISPATCHER_TASK = "notifier.tasks.send_notification_messages"
SWEEPER_TASK = "notifier.tasks.sweep_outbox"
PHONES_TASK = "notifier.tasks.refresh_all_family_phones"
DISPATCHER_TASK_NAMES = ("policy_notification.tasks.send_notification_messages", DISPATCHER_TASK)
DISPATCHER_PERIODIC_TASK_NAME = "policy notifications: dispatcher"
SWEEPER_PERIODIC_TASK_NAME = "policy notifications: outbox sweeper"
PHONES_PERIODIC_TASK_NAME = "policy notifications: family phones full refresh"
HOUSEKEEPING_TASK = "notifier.tasks.operator_housekeeping"
HOUSEKEEPING_PERIODIC_TASK_NAME = "policy notifications: housekeeping"


class ScheduleError(ValueError):
    """The schedule config is unusable; the message names the key."""


@dataclass(frozen=True)
class Schedule:
    hours: tuple[int, ...]
    source: str  # the key the hours were read from

    @property
    def crontab_hour(self) -> str:
        return ",".join(str(hour) for hour in self.hours)

    def ticks_around(self, moment: dt.datetime, tz: ZoneInfo) -> list[dt.datetime]:
        """Scheduled run times from the day before `moment` to the day after, in order (aware, in `tz`)."""
        local = moment.astimezone(tz).date()
        ticks: list[dt.datetime] = []
        for offset in (-1, 0, 1):
            day = local + dt.timedelta(days=offset)
            ticks.extend(dt.datetime.combine(day, dt.time(hour), tzinfo=tz) for hour in self.hours)
        return ticks

    def last_tick_before(self, moment: dt.datetime, tz: ZoneInfo) -> dt.datetime:
        return max(tick for tick in self.ticks_around(moment, tz) if tick <= moment)


def hours_from_triggers(first: int, last: int, interval: int) -> tuple[int, ...]:
    if interval < 1:
        raise ScheduleError(f"NOTIFIER.trigger_time_interval_hours: must be at least 1, got {interval}")
    if not 0 <= first <= last <= 23:
        raise ScheduleError(
            f"NOTIFIER.trigger_first_call_hour / trigger_last_call_hour: need 0 <= first <= last <= 23, "
            f"got {first} and {last}"
        )
    return tuple(range(first, last + 1, interval))


def _hour(text: str, key: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise ScheduleError(f"{key}: {text!r} is not an hour (0-23)")
    value = int(text)
    if value > 23:
        raise ScheduleError(f"{key}: hour {value} is out of range 0-23")
    return value


def parse_hour_spec(value: object, key: str) -> tuple[int, ...]:
    """`8`, `"8"`, `"8, 12, 16"`, `"8-16"` (every hour), a list of hours, or a mix of those separated by commas."""
    if isinstance(value, bool) or value is None:
        raise ScheduleError(f'{key}: expected an hour, a list "8, 12, 16" or a range "8-16", got {value!r}')
    if isinstance(value, int):
        return parse_hour_spec(str(value), key)
    if isinstance(value, list | tuple):
        if not value:
            raise ScheduleError(f"{key}: the list of hours is empty")
        hours: set[int] = set()
        for item in value:
            hours.update(parse_hour_spec(item, key))
        return tuple(sorted(hours))
    if not isinstance(value, str):
        raise ScheduleError(f"{key}: expected an hour, a list or a range, got {type(value).__name__}")
    if not value.strip():
        raise ScheduleError(f"{key}: is empty")
    result: set[int] = set()
    for part in value.split(","):
        if "-" in part:
            start_text, _, end_text = part.partition("-")
            start, end = _hour(start_text, key), _hour(end_text, key)
            if start > end:
                raise ScheduleError(f"{key}: range {part.strip()!r} runs backwards")
            result.update(range(start, end + 1))
        else:
            result.add(_hour(part, key))
    return tuple(sorted(result))


def _task_name(entry: Mapping[str, Any]) -> object:
    for name_key in ("task", "method", "name"):
        if name_key in entry:
            return entry[name_key]
    return None


def _is_active(entry: Mapping[str, Any], key: str) -> bool:
    for flag in ("active", "enabled"):
        if flag in entry:
            value = entry[flag]
            if not isinstance(value, bool):
                raise ScheduleError(f"{key}.{flag}: expected true or false, got {value!r}")
            if not value:
                return False
    return True


def _entry_hour(entry: Mapping[str, Any], key: str) -> tuple[object, str]:
    if "hour" in entry:
        return entry["hour"], f"{key}.hour"
    kwargs = entry.get("kwargs")
    if isinstance(kwargs, Mapping) and "hour" in kwargs:
        return kwargs["hour"], f"{key}.kwargs.hour"
    raise ScheduleError(f"{key}: an active entry for the dispatcher needs an 'hour'")


def derive_schedule(
    config: NotifierConfig | None = None, scheduled_tasks: Sequence[Mapping[str, Any]] | None = None
) -> Schedule:
    """The dispatcher's hours. Reads settings.NOTIFIER / settings.SCHEDULED_TASK when not given."""
    if config is None:
        config = get_config()
    if scheduled_tasks is None:
        scheduled_tasks = getattr(settings, "SCHEDULED_TASK", None) or []
    if not isinstance(scheduled_tasks, list | tuple):
        raise ScheduleError(f"SCHEDULED_TASK: expected a list of entries, got {type(scheduled_tasks).__name__}")
    for index, entry in enumerate(scheduled_tasks):
        key = f"SCHEDULED_TASK[{index}]"
        if not isinstance(entry, Mapping):
            raise ScheduleError(f"{key}: expected an object, got {type(entry).__name__}")
        if _task_name(entry) not in DISPATCHER_TASK_NAMES or not _is_active(entry, key):
            continue
        value, hour_key = _entry_hour(entry, key)
        return Schedule(hours=parse_hour_spec(value, hour_key), source=hour_key)
    hours = hours_from_triggers(
        config.trigger_first_call_hour, config.trigger_last_call_hour, config.trigger_time_interval_hours
    )
    return Schedule(hours=hours, source="NOTIFIER.trigger_*")


def sweep_interval_seconds() -> int:
    return get_settings().sweep_interval_seconds


def phone_refresh_hours() -> tuple[int, ...]:
    """When the derived family phones are recomputed in full (NOTIFIER_PHONE_REFRESH_HOUR, default 2 at night):
    openIMIS may change an insuree's phone in place, without the new version the per-run catch-up looks for."""
    return parse_hour_spec(get_settings().phone_refresh_hour, "NOTIFIER_PHONE_REFRESH_HOUR")


def _differences(task: Any, wanted: Mapping[str, object]) -> list[str]:
    return [name for name, value in wanted.items() if getattr(task, name) != value]


def _apply(name: str, wanted: dict[str, object], describe: str) -> list[str]:
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(name=name).first()
    if task is None:
        PeriodicTask.objects.create(name=name, **wanted)
        return [f"created periodic task {name!r} ({describe})"]
    changed = _differences(task, wanted)
    if not changed:
        return []
    for field_name in changed:
        setattr(task, field_name, wanted[field_name])
    task.save()  # save(), not update(): django-celery-beat's signal tells beat to reload its schedule
    return [f"updated periodic task {name!r}: {', '.join(sorted(changed))} ({describe})"]


@transaction.atomic
def sync_schedule(schedule: Schedule | None = None) -> list[str]:
    """Write the schedule into django-celery-beat. Idempotent; returns what changed (empty: nothing)."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    schedule = schedule or derive_schedule()
    interval_seconds = sweep_interval_seconds()
    phone_hours = ",".join(str(hour) for hour in phone_refresh_hours())
    tz = ZoneInfo(settings.TIME_ZONE)
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0",
        hour=schedule.crontab_hour,
        day_of_month="*",
        month_of_year="*",
        day_of_week="*",
        timezone=tz,
    )
    interval, _ = IntervalSchedule.objects.get_or_create(every=interval_seconds, period=IntervalSchedule.SECONDS)
    changes = _apply(
        DISPATCHER_PERIODIC_TASK_NAME,
        {
            "task": DISPATCHER_TASK,
            "crontab": crontab,
            "interval": None,
            "enabled": True,
            "args": "[]",
            "kwargs": "{}",
            "one_off": False,
            "description": f"Detection and delivery at {schedule.crontab_hour} h {tz.key} (from {schedule.source}).",
        },
        f"hours {schedule.crontab_hour} {tz.key}",
    )
    changes += _apply(
        SWEEPER_PERIODIC_TASK_NAME,
        {
            "task": SWEEPER_TASK,
            "interval": interval,
            "crontab": None,
            "enabled": True,
            "args": "[]",
            "kwargs": "{}",
            "one_off": False,
            "description": "Takes back expired delivery leases; enqueues due retries, deferred rows and lost tasks.",
        },
        f"every {interval_seconds} s",
    )
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour=phone_hours, day_of_month="*", month_of_year="*", day_of_week="*", timezone=tz
    )
    changes += _apply(
        PHONES_PERIODIC_TASK_NAME,
        {
            "task": PHONES_TASK,
            "crontab": nightly,
            "interval": None,
            "enabled": True,
            "args": "[]",
            "kwargs": "{}",
            "one_off": False,
            "description": "Recomputes every family's phone from tblInsuree (openIMIS may edit a phone in place).",
        },
        f"hours {phone_hours} {tz.key}",
    )
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    changes += _apply(
        HOUSEKEEPING_PERIODIC_TASK_NAME,
        {
            "task": HOUSEKEEPING_TASK,
            "interval": hourly,
            "crontab": None,
            "enabled": True,
            "args": "[]",
            "kwargs": "{}",
            "one_off": False,
            "description": "Deletes report files past NOTIFIER_REPORT_KEEP_HOURS.",
        },
        "every hour",
    )
    return changes
