from __future__ import annotations

from typing import Any

from django.db import migrations

LANGUAGES = [("en", "English", 1), ("fr", "Français", 2), ("sw", "Kiswahili", 3)]


def seed_languages(apps: Any, schema_editor: Any) -> None:
    Language = apps.get_model("notifier", "Language")
    for code, name, order in LANGUAGES:
        Language.objects.get_or_create(code=code, defaults={"name": name, "sort_order": order})


class Migration(migrations.Migration):
    dependencies = [("notifier", "0001_initial")]

    operations = [migrations.RunPython(seed_languages, migrations.RunPython.noop)]
