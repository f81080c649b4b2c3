from __future__ import annotations

from django.apps import AppConfig


class OpenIMISConfig(AppConfig):
    name = "notifier.openimis"
    label = "openimis"
    verbose_name = "openIMIS (families, insurees, policies)"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from notifier.openimis import mode

        mode.connect_signals()
