from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "The embedded demo: migrate the database, load the demo scheme and show what is there."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="Run as of this day (YYYY-MM-DD); default: today in TIME_ZONE.")

    def handle(self, *args: Any, **options: Any) -> None:
        database = settings.DATABASES["default"]
        self.stdout.write(f"Database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}")
        self.stdout.write(
            f"Broker:   {settings.CELERY_BROKER_URL}{' (embedded, in-process)' if settings.EMBEDDED_BROKER else ''}"
        )
        call_command("migrate", verbosity=0, interactive=False)
        demo_args = ["--date", options["date"]] if options["date"] else []
        call_command("load_demo", *demo_args, stdout=self.stdout)
