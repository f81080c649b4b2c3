from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from notifier.config import ConfigError, load_from_environment
from notifier.cycle import cycle_table
from notifier.dispatch import DispatchSkipped, dispatch
from notifier.management.fake_gateway import aim_fake_gateway_accounts, local_web_server
from notifier.management.options import parse_date
from notifier.models import FakeGatewayMessage, ProviderAccount
from notifier.providers.registry import UnknownProviderError, get_provider
from notifier.providers.text import TextNotificationProvider, destination
from notifier.types import NOTIFICATION_TYPES

ADMIN = "http://127.0.0.1:8000/admin/notifier"
ENABLE_ALL_TYPES: dict[str, Any] = {"eligibleNotificationTypes": dict.fromkeys(NOTIFICATION_TYPES, True)}


def point_accounts_at(base_url: str) -> list[ProviderAccount]:
    """Seed the accounts from config if there are none; aim the fake-eGA ones (SmsResource = test_sms) at base_url.

    Refuses if an enabled account would reach a real SMS gateway: demo families must never get a text.
    """
    aimed = {account.pk for account in aim_fake_gateway_accounts(base_url)}
    accounts = list(ProviderAccount.objects.filter(enabled=True).order_by("priority", "id"))
    for account in accounts:
        try:
            provider = get_provider(account.provider)
        except UnknownProviderError:
            raise CommandError(f"provider account {account.name!r}: unknown provider {account.provider!r}") from None
        if account.pk not in aimed and provider.delivers_sms:
            raise CommandError(
                f"provider account {account.name!r} ({account.provider}) would send real SMS to demo families; "
                "the demo only sends through the fake eGA gateway (test_sms). Disable that account first."
            )
    return accounts


def text_folder(accounts: list[ProviderAccount]) -> Path | None:
    for account in accounts:
        if account.provider == TextNotificationProvider.slug:
            return destination(str((account.config or {}).get("DestinationFolder", "sent_notification")))
    return None


class Command(BaseCommand):
    help = (
        "The embedded demo: migrate, load the demo scheme, enable all six notification types, send one full cycle "
        "for the day through the fake eGA gateway (test_sms, served in this process) and print what happened."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="Run as of this day (YYYY-MM-DD); default: today in TIME_ZONE.")
        parser.add_argument("--families", type=int, default=300, help="Demo families to load (first run only).")

    def handle(self, *args: Any, **options: Any) -> None:
        run_date = parse_date(options["date"])
        database = settings.DATABASES["default"]
        self.stdout.write(f"Database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}")
        self.stdout.write(
            f"Broker:   {settings.CELERY_BROKER_URL}{' (embedded, in-process)' if settings.EMBEDDED_BROKER else ''}"
        )
        call_command("migrate", verbosity=0, interactive=False)
        demo_args = ["--families", str(options["families"])]
        if options["date"]:
            demo_args += ["--date", options["date"]]
        call_command("load_demo", *demo_args, stdout=self.stdout)

        # For this process only: every type on, no quiet hours (the demo shows one cycle now, whatever the hour),
        # and the fake gateway answering.
        settings.NOTIFIER = {**settings.NOTIFIER, **ENABLE_ALL_TYPES, "quiet_hours": None}
        settings.NOTIFIER_ENABLE_TEST_SMS = True
        received_before = FakeGatewayMessage.objects.count()
        with local_web_server() as base_url:
            accounts = point_accounts_at(base_url)
            self.stdout.write(f"Fake eGA gateway: {base_url}{reverse('notifier:test_sms')} (in this process)")
            self.stdout.write("Sending one full cycle, all six types enabled...")
            notifier_log = logging.getLogger("notifier")
            level = notifier_log.level
            if options["verbosity"] < 2:  # a line per message would bury the table
                notifier_log.setLevel(logging.WARNING)
            try:
                outcome = dispatch(run_date, in_process=True)
            except DispatchSkipped as exc:
                raise CommandError(str(exc)) from None
            finally:
                notifier_log.setLevel(level)
        self.stdout.write("")
        self.stdout.write(f"Notifications for {outcome.run_date}:")
        for line in cycle_table(outcome.types):
            self.stdout.write("  " + line)
        self.where_to_look(accounts, FakeGatewayMessage.objects.count() - received_before)
        self.next_commands()

    def next_commands(self) -> None:
        """The demo turned the types on for its own process only: say how to do the same for the next commands."""
        try:
            current = load_from_environment()
        except ConfigError:
            current = {}
        line = json.dumps({**current, **ENABLE_ALL_TYPES}, separators=(",", ":"))
        self.stdout.write("")
        self.stdout.write("The six types were on for this command only. To use them in the next commands (shell):")
        self.stdout.write(f"  export NOTIFIER_CONFIG='{line}'")
        self.stdout.write(
            "  .venv/bin/python manage.py send_notifications --dry-run    # what today would queue, and why not"
        )
        self.stdout.write("  .venv/bin/python manage.py forecast_notifications --days 7  # the next days, per type")

    def where_to_look(self, accounts: list[ProviderAccount], received: int) -> None:
        self.stdout.write("")
        self.stdout.write("Where to look (start the admin with `manage.py createsuperuser` and `manage.py runserver`):")
        self.stdout.write(f"  outbox and delivery attempts    {ADMIN}/outbox/")
        self.stdout.write(f"  why each policy was (not) sent  {ADMIN}/decision/")
        self.stdout.write(
            f"  what the fake gateway got       {ADMIN}/fakegatewaymessage/  ({received} message(s) this run)"
        )
        folder = text_folder(accounts)
        if folder is not None:
            files = len(list(folder.glob("*.txt"))) if folder.is_dir() else 0
            self.stdout.write(
                f"  text provider audit copies      {folder}  ({files} file(s), one per delivered message)"
            )
        self.stdout.write(f"  the database                    {settings.DATABASES['default']['NAME']}")
