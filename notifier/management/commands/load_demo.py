from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifier.demo import load_demo
from notifier.eligibility import MODE_LABELS, filter_by_mode
from notifier.management.options import parse_date
from notifier.models import Family


class Command(BaseCommand):
    help = "Load a small demo scheme (2 regions, ~300 families) placed around today. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="Place the scheme around this day (YYYY-MM-DD); default: today.")
        parser.add_argument("--families", type=int, default=300)
        parser.add_argument("--seed", type=int, default=20261128)

    def handle(self, *args: Any, **options: Any) -> None:
        today = parse_date(options["date"])
        if options["families"] < 1:
            raise CommandError("--families: must be at least 1")
        summary = load_demo(today=today, families=options["families"], seed=options["seed"])
        if summary.created:
            self.stdout.write(
                f"Demo scheme loaded: {summary.families} families, {summary.insurees} insurees, "
                f"{summary.policies} policies."
            )
        else:
            self.stdout.write(f"Demo scheme already present ({summary.families} current families); left as it is.")
        families = Family.objects.current()
        self.stdout.write("Families per eligibility mode:")
        for mode, label in MODE_LABELS.items():
            count = filter_by_mode(families, mode).count()
            self.stdout.write(f"  {int(mode)} {label:<30} {count:>5}")
