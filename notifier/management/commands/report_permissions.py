from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from notifier.report.access import REPORT_GROUP, ensure_report_permissions


class Command(BaseCommand):
    help = "Create the report's permissions from family_policy_notification_report_perms and the Report viewer group."

    def handle(self, *args: Any, **options: Any) -> None:
        permissions = ensure_report_permissions()
        codenames = ", ".join(f"notifier.{permission.codename}" for permission in permissions) or "none"
        self.stdout.write(f"{REPORT_GROUP!r} group holds: {codenames}")
