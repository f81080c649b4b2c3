from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models.signals import post_migrate


def _sync_schedule_after_migrate(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    """Keep beat's schedule in step with the config on every `migrate`.

    Skipped when django-celery-beat's tables are not there yet (a partial migrate, a database being built
    without them) or for another database than the default one.
    """
    from notifier.schedule import sync_schedule

    if using != "default":
        return
    tables = set(connections[using].introspection.table_names())
    if not {"django_celery_beat_periodictask", "django_celery_beat_crontabschedule"} <= tables:
        return
    changes = sync_schedule()
    verbosity = kwargs.get("verbosity", 1)
    if changes and verbosity >= 1:
        for change in changes:
            print(f"  sync_schedule: {change}")


class NotifierAppConfig(AppConfig):
    name = "notifier"
    verbose_name = "Policy notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notifier import (
            attached_checks,  # noqa: F401 - registers the attached database's system check
            handlers,  # noqa: F401 - connects the family mutation receivers
        )
        from notifier.config import ConfigError
        from notifier.providers import check_provider_config
        from notifier.schedule import ScheduleError, derive_schedule, phone_refresh_hours

        try:  # a bad schedule or provider entry stops the process at start-up, naming the key
            derive_schedule()
            phone_refresh_hours()
            check_provider_config()
        except (ScheduleError, ConfigError) as exc:
            raise ImproperlyConfigured(str(exc)) from None
        post_migrate.connect(_sync_schedule_after_migrate, sender=self, dispatch_uid="notifier.sync_schedule")
