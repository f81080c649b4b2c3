"""The scheduled full refresh of the derived family phones (SPEC §14, issue 11 point 4).

openIMIS may change tblInsuree.Phone in place, without a new version: the dispatcher's catch-up (by ValidityFrom /
ValidityTo) cannot see that, the nightly full refresh written into beat by sync_schedule does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps
from django.db import connection
from django.db.models import Model
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from notifier.dispatch import dispatch
from notifier.schedule import PHONES_PERIODIC_TASK_NAME, ScheduleError, sync_schedule
from notifier.tasks import refresh_all_family_phones

pytestmark = pytest.mark.django_db


def model_of(table: str) -> type[Model]:
    """The model mapped on an openIMIS table, wherever its app lives."""
    return next(model for model in apps.get_models() if model._meta.db_table == table)


def phone_of(family: Any) -> str | None:
    family_phone = model_of("notifier_family_phone")
    phone: str | None = (
        family_phone._default_manager.filter(family_id=family.pk).values_list("phone", flat=True).first()
    )
    return phone


def update_phone_in_place(insuree_id: int, phone: str) -> None:
    """What openIMIS may do: an UPDATE of the current row, no history row, ValidityFrom untouched."""
    with connection.cursor() as cursor:
        cursor.execute('UPDATE "tblInsuree" SET "Phone" = %s WHERE "InsureeID" = %s', [phone, insuree_id])
        assert cursor.rowcount == 1


def test_an_in_place_phone_update_is_picked_up_by_the_full_refresh_only(make_family: Callable[..., Any]) -> None:
    start = timezone.now()
    with time_machine.travel(start - dt.timedelta(minutes=5), tick=False):
        changed = make_family(head_phone="0712345678")
        untouched = make_family(head_phone="0754111222")
    with time_machine.travel(start, tick=False):
        dispatch(timezone.localdate())  # no type enabled: the lock, the catch-up, the run
    with time_machine.travel(start + dt.timedelta(hours=1), tick=False):
        update_phone_in_place(changed.head_insuree_id, "0765 432 100")
    with time_machine.travel(start + dt.timedelta(hours=2), tick=False):
        dispatch(timezone.localdate())  # no type enabled: the lock, the catch-up, the run
        assert phone_of(changed) == "+255712345678"  # the catch-up looks at versions: it cannot see this

        assert refresh_all_family_phones() == {"family_phones": 2}

    assert phone_of(changed) == "+255765432100"
    assert phone_of(untouched) == "+255754111222"


def test_sync_schedule_writes_the_nightly_refresh_at_2_by_default(settings: Any) -> None:
    settings.TIME_ZONE = "Africa/Dar_es_Salaam"
    PeriodicTask.objects.filter(name=PHONES_PERIODIC_TASK_NAME).delete()

    changes = sync_schedule()

    assert f"created periodic task {PHONES_PERIODIC_TASK_NAME!r} (hours 2 Africa/Dar_es_Salaam)" in changes
    task = PeriodicTask.objects.get(name=PHONES_PERIODIC_TASK_NAME)
    assert task.task == "notifier.tasks.refresh_all_family_phones"
    assert task.enabled and task.interval is None and task.crontab is not None
    assert (task.crontab.minute, task.crontab.hour) == ("0", "2")
    assert task.crontab.timezone == ZoneInfo("Africa/Dar_es_Salaam")
    assert sync_schedule() == []


def test_the_refresh_hour_is_configurable(settings: Any) -> None:
    sync_schedule()
    settings.NOTIFIER_PHONE_REFRESH_HOUR = "23"

    changes = sync_schedule()

    assert any(PHONES_PERIODIC_TASK_NAME in change and "crontab" in change for change in changes)
    crontab = PeriodicTask.objects.get(name=PHONES_PERIODIC_TASK_NAME).crontab
    assert crontab is not None and crontab.hour == "23"


def test_a_bad_refresh_hour_is_refused_naming_the_setting(settings: Any) -> None:
    settings.NOTIFIER_PHONE_REFRESH_HOUR = "25"

    with pytest.raises(ScheduleError, match=r"NOTIFIER_PHONE_REFRESH_HOUR: hour 25 is out of range 0-23"):
        sync_schedule()
    assert not PeriodicTask.objects.filter(name=PHONES_PERIODIC_TASK_NAME, crontab__hour="25").exists()
