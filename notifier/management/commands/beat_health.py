from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from notifier.beat import heartbeat_key
from notifier.locks import redis_client
from notifier.settings import get_settings


class Command(BaseCommand):
    help = (
        "The beat container's health check: this host's beat ticked within NOTIFIER_BEAT_STALE_SECONDS (120). "
        "Exits 1 when the heartbeat is missing or old (a stuck or dead beat)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        client = redis_client()
        if client is None:
            raise CommandError("REDIS_URL: not set; the beat heartbeat lives in Redis")
        limit = get_settings().beat_stale_seconds
        value = client.get(heartbeat_key())
        if value is None:
            raise CommandError(f"beat: no heartbeat from this host ({heartbeat_key()})")
        age = time.time() - float(value)
        if age > limit:
            raise CommandError(f"beat: last tick {age:.0f} s ago (limit {limit} s): stuck or stopped")
        self.stdout.write(f"beat: last tick {age:.0f} s ago")
