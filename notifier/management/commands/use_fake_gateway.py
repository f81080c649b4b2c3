from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from notifier.management.fake_gateway import aim_fake_gateway_accounts
from notifier.management.options import parse_base_url


class Command(BaseCommand):
    help = (
        "Point the provider accounts that use this project's fake eGA gateway (SmsResource = test_sms) at a web "
        "server's base URL, e.g. http://127.0.0.1:8000 (bin/serve runs it for its own web port). Accounts of real "
        "gateways are left alone. The web server must serve test_sms (DEBUG or NOTIFIER_ENABLE_TEST_SMS=1)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("base_url", help="The web server's base URL, e.g. http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = parse_base_url(options["base_url"])
        accounts = aim_fake_gateway_accounts(base_url)
        names = ", ".join(account.name for account in accounts) or "none"
        self.stdout.write(f"Fake eGA gateway accounts now sending to {base_url}: {names}")
