from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifier.health import CHECKS


class Command(BaseCommand):
    help = "The health endpoint's checks from the command line (container probes); exits 1 when unhealthy."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--checks", default=",".join(CHECKS), help=f"Comma-separated, of: {', '.join(CHECKS)}.")

    def handle(self, *args: Any, **options: Any) -> None:
        names = [name.strip() for name in options["checks"].split(",") if name.strip()]
        unknown = [name for name in names if name not in CHECKS]
        if unknown or not names:
            raise CommandError(f"--checks: unknown or empty {', '.join(unknown)}; known: {', '.join(CHECKS)}")
        results = {name: CHECKS[name]() for name in names}
        self.stdout.write(json.dumps({name: result.as_dict() for name, result in results.items()}))
        failed = [f"{name}: {result.reason}" for name, result in results.items() if not result.ok]
        if failed:
            raise CommandError("unhealthy: " + "; ".join(failed), returncode=1)
