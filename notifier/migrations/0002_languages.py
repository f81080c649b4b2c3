from __future__ import annotations

from typing import Any

from django.db import migrations

LANGUAGES = [("en", "English", 1), ("fr", "Français", 2), ("sw", "Kiswahili", 3)]


def seed_languages(apps: Any, schema_editor: Any) -> None:
    try:
        Language = apps.get_model("notifier", "Language")
    except LookupError:  # called with the current apps (tests/baseline.py): the model moved to the app `openimis`
        Language = apps.get_model("openimis", "Language")
    for code, name, order in LANGUAGES:
        Language.objects.get_or_create(code=code, defaults={"name": name, "sort_order": order})


class Migration(migrations.Migration):
    dependencies = [("notifier", "0001_initial")]

    # Attached, tblLanguages is openIMIS's: the router skips this (hint `openimis`).
    operations = [migrations.RunPython(seed_languages, migrations.RunPython.noop, hints={"openimis": True})]
