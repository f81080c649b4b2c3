from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from notifier.config import parse_config
from notifier.schedule import (
    DISPATCHER_PERIODIC_TASK_NAME,
    DISPATCHER_TASK,
    SWEEPER_PERIODIC_TASK_NAME,
    SWEEPER_TASK,
    ScheduleError,
    derive_schedule,
    parse_hour_spec,
    sync_schedule,
)
from tests.processes import run_python

SEED_TASK = "policy_notification.tasks.send_notification_messages"


def test_it_derives_8_12_16_20_from_the_default_triggers():
    schedule = derive_schedule(parse_config({}), [])
    assert schedule.hours == (8, 12, 16, 20)
    assert schedule.crontab_hour == "8,12,16,20"
    assert schedule.source == "NOTIFIER.trigger_*"


def test_it_derives_hours_from_changed_triggers():
    config = parse_config(
        {"trigger_first_call_hour": 6, "trigger_last_call_hour": 21, "trigger_time_interval_hours": 5}
    )
    assert derive_schedule(config, []).hours == (6, 11, 16, 21)


def test_it_runs_once_a_day_when_first_and_last_hour_are_equal():
    config = parse_config({"trigger_first_call_hour": 9, "trigger_last_call_hour": 9})
    assert derive_schedule(config, []).hours == (9,)


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        ("8, 12, 16", (8, 12, 16)),
        (8, (8,)),
        ("8", (8,)),
        ("8-16", tuple(range(8, 17))),
        ("0", (0,)),
        ("6-8, 20", (6, 7, 8, 20)),
        ([8, "12", 16], (8, 12, 16)),
        ("16,8,8", (8, 16)),
    ],
)
def test_it_reads_the_hour_of_an_active_scheduled_task(hour, expected):
    schedule = derive_schedule(parse_config({}), [{"task": SEED_TASK, "hour": hour}])
    assert schedule.hours == expected
    assert schedule.source == "SCHEDULED_TASK[0].hour"


def test_it_accepts_the_openimis_scheduler_job_shape_and_our_task_name():
    entries = [
        {"method": "core.tasks.openimis_test_batch", "kwargs": {"minute": 16}},
        {"method": DISPATCHER_TASK, "args": ["cron"], "kwargs": {"id": "notification_batch", "hour": "7-9"}},
    ]
    schedule = derive_schedule(parse_config({}), entries)
    assert schedule.hours == (7, 8, 9)
    assert schedule.source == "SCHEDULED_TASK[1].kwargs.hour"


def test_it_ignores_an_inactive_entry_and_falls_back_to_the_triggers():
    entries = [{"task": SEED_TASK, "hour": "3", "active": False}]
    assert derive_schedule(parse_config({}), entries).hours == (8, 12, 16, 20)


def test_it_ignores_entries_for_other_tasks():
    entries = [{"task": "insuree.tasks.something", "hour": "3"}]
    assert derive_schedule(parse_config({}), entries).hours == (8, 12, 16, 20)


@pytest.mark.parametrize(
    ("hour", "message"),
    [
        ("24", "hour 24 is out of range 0-23"),
        ("16-8", "runs backwards"),
        ("8-", "is not an hour"),
        ("eight", "'eight' is not an hour"),
        ("", "is empty"),
        ("*/4", "is not an hour"),
        ("-3", "is not an hour"),
        (True, "expected an hour"),
        (None, "expected an hour"),
        (8.5, "expected an hour, a list or a range, got float"),
        ([], "the list of hours is empty"),
    ],
)
def test_it_refuses_bad_hours_naming_the_key(hour, message):
    with pytest.raises(ScheduleError) as caught:
        derive_schedule(parse_config({}), [{"other": 1}, {"task": SEED_TASK, "hour": hour}])
    assert str(caught.value).startswith("SCHEDULED_TASK[1].hour: ")
    assert message in str(caught.value)


def test_it_refuses_an_active_entry_without_hour():
    with pytest.raises(ScheduleError, match=r"SCHEDULED_TASK\[0\]: an active entry for the dispatcher needs an 'hour'"):
        derive_schedule(parse_config({}), [{"task": SEED_TASK, "minute": 5}])


def test_it_refuses_a_non_boolean_active_flag():
    with pytest.raises(ScheduleError, match=r"SCHEDULED_TASK\[0\]\.active: expected true or false"):
        derive_schedule(parse_config({}), [{"task": SEED_TASK, "hour": 8, "active": "no"}])


def test_it_refuses_a_scheduled_task_setting_that_is_not_a_list(settings):
    settings.SCHEDULED_TASK = {"task": SEED_TASK}
    with pytest.raises(ScheduleError, match="SCHEDULED_TASK: expected a list"):
        derive_schedule()


def test_it_names_the_key_for_a_bad_nested_hour():
    with pytest.raises(ScheduleError, match=r"SCHEDULED_TASK\[0\]\.kwargs\.hour: hour 25"):
        parse_hour_spec("25", "SCHEDULED_TASK[0].kwargs.hour")


@pytest.mark.django_db
def test_it_writes_the_dispatcher_and_sweeper_to_beat(settings):
    settings.SCHEDULED_TASK = []
    PeriodicTask.objects.all().delete()
    changes = sync_schedule()
    assert len(changes) == 4  # dispatcher, sweeper, family phones, housekeeping
    dispatcher = PeriodicTask.objects.get(name=DISPATCHER_PERIODIC_TASK_NAME)
    assert dispatcher.task == DISPATCHER_TASK
    assert dispatcher.enabled
    assert dispatcher.crontab is not None
    assert dispatcher.crontab.hour == "8,12,16,20"
    assert dispatcher.crontab.minute == "0"
    assert dispatcher.crontab.timezone == ZoneInfo(settings.TIME_ZONE)
    sweeper = PeriodicTask.objects.get(name=SWEEPER_PERIODIC_TASK_NAME)
    assert sweeper.task == SWEEPER_TASK
    assert sweeper.interval is not None
    assert sweeper.interval.every == settings.NOTIFIER_SWEEP_INTERVAL_SECONDS


@pytest.mark.django_db
def test_it_is_idempotent():
    sync_schedule()
    tasks_before = list(PeriodicTask.objects.order_by("id").values_list("id", "crontab_id", "interval_id"))
    crontabs_before = CrontabSchedule.objects.count()
    assert sync_schedule() == []
    assert list(PeriodicTask.objects.order_by("id").values_list("id", "crontab_id", "interval_id")) == tasks_before
    assert CrontabSchedule.objects.count() == crontabs_before


@pytest.mark.django_db
def test_it_updates_the_schedule_when_the_config_changes(settings):
    sync_schedule()
    dispatcher_id = PeriodicTask.objects.get(name=DISPATCHER_PERIODIC_TASK_NAME).id
    settings.SCHEDULED_TASK = [{"task": SEED_TASK, "hour": "9-11"}]
    changes = sync_schedule()
    assert changes == [
        f"updated periodic task {DISPATCHER_PERIODIC_TASK_NAME!r}: crontab, description "
        f"(hours 9,10,11 {settings.TIME_ZONE})"
    ]
    dispatcher = PeriodicTask.objects.get(name=DISPATCHER_PERIODIC_TASK_NAME)
    assert dispatcher.id == dispatcher_id
    assert dispatcher.crontab is not None
    assert dispatcher.crontab.hour == "9,10,11"
    assert PeriodicTask.objects.filter(task=DISPATCHER_TASK).count() == 1


@pytest.mark.django_db
def test_it_overwrites_an_admin_edit_on_sync():
    sync_schedule()
    dispatcher = PeriodicTask.objects.get(name=DISPATCHER_PERIODIC_TASK_NAME)
    dispatcher.enabled = False
    dispatcher.crontab = CrontabSchedule.objects.create(minute="30", hour="3")
    dispatcher.save()
    changes = sync_schedule()
    assert len(changes) == 1
    dispatcher.refresh_from_db()
    assert dispatcher.enabled
    assert dispatcher.crontab is not None
    assert (dispatcher.crontab.minute, dispatcher.crontab.hour) == ("0", "8,12,16,20")


@pytest.mark.django_db
def test_it_syncs_from_the_management_command(settings):
    settings.SCHEDULED_TASK = [{"task": DISPATCHER_TASK, "hour": 7}]
    out = io.StringIO()
    call_command("sync_schedule", stdout=out)
    assert "Dispatcher hours: 7" in out.getvalue()
    assert PeriodicTask.objects.get(name=DISPATCHER_PERIODIC_TASK_NAME).crontab.hour == "7"
    out = io.StringIO()
    call_command("sync_schedule", stdout=out)
    assert "already up to date" in out.getvalue()


@pytest.mark.django_db
def test_it_fails_the_command_with_the_key_on_bad_config(settings):
    settings.SCHEDULED_TASK = [{"task": SEED_TASK, "hour": "25"}]
    with pytest.raises(CommandError, match=r"SCHEDULED_TASK\[0\]\.hour: hour 25 is out of range"):
        call_command("sync_schedule", stdout=io.StringIO())


@pytest.mark.django_db
def test_it_syncs_after_migrate():
    PeriodicTask.objects.all().delete()
    call_command("migrate", verbosity=0, interactive=False)
    assert PeriodicTask.objects.get(name=DISPATCHER_PERIODIC_TASK_NAME).crontab.hour == "8,12,16,20"
    assert PeriodicTask.objects.filter(name=SWEEPER_PERIODIC_TASK_NAME).exists()


@pytest.mark.django_db
def test_it_fires_at_the_scheme_hours_in_its_time_zone(settings):
    settings.TIME_ZONE = "Africa/Dar_es_Salaam"
    sync_schedule()
    dispatcher = PeriodicTask.objects.get(name=DISPATCHER_PERIODIC_TASK_NAME)
    assert dispatcher.crontab is not None
    schedule = dispatcher.crontab.schedule  # what beat's DatabaseScheduler evaluates
    dar = ZoneInfo("Africa/Dar_es_Salaam")
    last_run = dt.datetime(2026, 11, 27, 20, 0, tzinfo=dar)
    with time_machine.travel(dt.datetime(2026, 11, 28, 7, 30, tzinfo=dar), tick=False):
        assert not schedule.is_due(last_run).is_due
    with time_machine.travel(dt.datetime(2026, 11, 28, 8, 0, 30, tzinfo=dar), tick=False):
        assert schedule.is_due(last_run).is_due  # 08:00 in Dar es Salaam is 05:00 UTC


def _manage(tmp_path, *args: str, scheduled_task: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update(SCHEDULED_TASK=scheduled_task, NOTIFIER_VAR_DIR=str(tmp_path))
    return run_python("manage.py", *args, env=environment, timeout=120)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('[{"task": "policy_notification.tasks.send_notification_messages", "hour": "25"}]', "hour 25 is out of range"),
        ('[{"method": "notifier.tasks.send_notification_messages", "kwargs": {"hour": "9-"}}]', "kwargs.hour: ''"),
        ('{"hour": 8}', "SCHEDULED_TASK: must be a JSON list"),
        ("[{", "SCHEDULED_TASK: not valid JSON"),
    ],
)
def test_it_stops_at_start_up_on_a_bad_scheduled_task(tmp_path, value, message):
    result = _manage(tmp_path, "check", scheduled_task=value)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()  # one line naming the key, no traceback (manage.py --traceback shows it)
    assert line.startswith("error: SCHEDULED_TASK")
    assert message in line


def test_it_starts_with_a_good_scheduled_task_from_the_environment(tmp_path):
    value = '[{"task": "policy_notification.tasks.send_notification_messages", "hour": "8, 12, 16"}]'
    result = _manage(
        tmp_path,
        "shell",
        "-c",
        "from notifier.schedule import derive_schedule; print(derive_schedule())",
        scheduled_task=value,
    )
    assert result.returncode == 0, result.stderr
    assert "hours=(8, 12, 16), source='SCHEDULED_TASK[0].hour'" in result.stdout
