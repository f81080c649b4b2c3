"""What the data migrations put in a fresh database (languages, shipped templates), for transactional tests.

A transactional test (transaction=True) empties every table when it ends, data migrations' rows included, and
pytest-django runs those tests last, one after another; so each one that needs this data puts it back first, by the
migrations' own functions. (serialized_rollback does not mix with transactional tests that do not use it.)
"""

from __future__ import annotations

import importlib

from django.apps import apps


def restore_migration_data() -> None:
    for module, function in (
        ("0002_languages", "seed_languages"),
        ("0003_templates", "ship_templates"),
        ("0016_late_wording", "ship_late_variants"),
    ):
        getattr(importlib.import_module(f"notifier.migrations.{module}"), function)(apps, None)
