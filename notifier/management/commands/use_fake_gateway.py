from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifier.management.commands.demo import aim_fake_gateway_accounts


class Command(BaseCommand):
    help = (
        "Point the provider accounts that use this project's fake eGA gateway (SmsResource = test_sms) at a web "
        "server's base URL, e.g. http://127.0.0.1:8000 (bin/serve runs it for its own web port). Accounts of real "
        "gateways are left alone. The web server must serve test_sms (DEBUG or NOTIFIER_ENABLE_TEST_SMS=1)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("base_url", help="The web server's base URL, e.g. http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        base_url: str = options["base_url"].rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise CommandError(f"base_url: expected http://host:port, got {options['base_url']!r}")
        accounts = aim_fake_gateway_accounts(base_url)
        names = ", ".join(account.name for account in accounts) or "none"
        self.stdout.write(f"Fake eGA gateway accounts now sending to {base_url}: {names}")
