from __future__ import annotations

from django.apps import AppConfig


class NotifierConfig(AppConfig):
    name = "notifier"
    verbose_name = "Policy notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notifier import handlers  # noqa: F401 - connects the family mutation receivers
