from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifier import quiet
from notifier.detection import scheme_today
from notifier.forecast import forecast
from notifier.management.options import NO_TYPE_ENABLED, parse_date
from notifier.schedule import derive_schedule
from notifier.settings import get_config
from notifier.types import BY_SLUG, NOTIFICATION_TYPES


class Command(BaseCommand):
    help = (
        "What each of the next N days (today first) would queue, by type, from today's data. Days are simulated "
        "in order, so a message counted on one day is not counted again on the next. Writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=7, help="How many days, today included (default 7).")
        parser.add_argument("--date", help="First day (YYYY-MM-DD); default: today in TIME_ZONE.")
        parser.add_argument(
            "--type", dest="types", action="append", choices=NOTIFICATION_TYPES, help="Only this type (repeatable)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["days"]
        if not 1 <= days <= 366:
            raise CommandError("--days: must be between 1 and 366")
        first = parse_date(options["date"]) or scheme_today()
        config = get_config()
        types = options["types"] or config.enabled_types()
        if not types:
            self.stdout.write(NO_TYPE_ENABLED)
            return
        cells = forecast(first, days, types)
        self.stdout.write(
            "day         " + "".join(f"{BY_SLUG[name].short_name:>12}" for name in types) + f"{'total':>8}"
        )
        for day, by_type in cells.items():
            counts = [by_type[name].messages for name in types]
            self.stdout.write(f"{day}  " + "".join(f"{count:>12}" for count in counts) + f"{sum(counts):>8}")
        note = quiet.forecast_note(config.quiet_hours, derive_schedule(config).hours, settings.TIME_ZONE)
        if note:
            self.stdout.write(note)
