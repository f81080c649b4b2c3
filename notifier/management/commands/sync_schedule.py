from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from notifier.schedule import ScheduleError, derive_schedule, sync_schedule


class Command(BaseCommand):
    help = (
        "Write the dispatcher schedule (NOTIFIER trigger_* hours or SCHEDULED_TASK), the outbox sweeper and the "
        "full refresh of the family phones (NOTIFIER_PHONE_REFRESH_HOUR) into django-celery-beat. Idempotent; "
        "overwrites edits made in the admin."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            schedule = derive_schedule()
            changes = sync_schedule(schedule)
        except ScheduleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Dispatcher hours: {schedule.crontab_hour} ({settings.TIME_ZONE}, from {schedule.source})")
        for change in changes:
            self.stdout.write(f"  {change}")
        if not changes:
            self.stdout.write("  already up to date")
