from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError

from notifier.config import NOTIFICATION_TYPES
from notifier.cycle import CycleSkipped, cycle_table, run_cycle
from notifier.detection import CandidateDecision, DetectionResult, run_all_detection
from notifier.models import Outbox
from notifier.tasks import enqueue_delivery

NO_TYPE_ENABLED = (
    "No notification type is enabled (eligibleNotificationTypes); nothing to do. Enable some with e.g. "
    'NOTIFIER_CONFIG=\'{"eligibleNotificationTypes":{"expiration_of_policy":true}}\' (`manage.py demo` prints the '
    "line for all six), or --type TYPE for one run."
)


def parse_date(value: str | None, option: str = "--date") -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: expected YYYY-MM-DD, got {value!r}") from None


def mask_phone(phone: str | None) -> str:
    """Enough of a number to recognise it, not enough to dial it (logs and consoles never show it whole)."""
    if not phone:
        return "-"
    return f"{phone[:4]}{'*' * max(len(phone) - 7, 0)}{phone[-3:]}"


def describe(result: DetectionResult) -> str:
    skipped = ", ".join(f"{reason}={count}" for reason, count in result.skipped.items()) or "none"
    return (
        f"{result.notification_type:<26} window {result.window_start}..{result.window_end}  "
        f"queued {result.queued:>4}  skipped {sum(result.skipped.values()):>4} ({skipped})  obsolete {result.obsolete}"
    )


class Command(BaseCommand):
    help = (
        "Detect due notifications (all enabled types, or --type) for a scheme day and queue them in the outbox. "
        "--dry-run writes nothing and prints each candidate with what would happen to it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="Scheme day to run for (YYYY-MM-DD); default: today in TIME_ZONE.")
        parser.add_argument(
            "--type",
            dest="types",
            action="append",
            choices=NOTIFICATION_TYPES,
            help="Only this notification type (repeatable); default: the enabled ones.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Write nothing; print what would be queued.")

    def handle(self, *args: Any, **options: Any) -> None:
        run_date = parse_date(options["date"])
        dry_run: bool = options["dry_run"]
        if not dry_run and settings.EMBEDDED_BROKER:
            self.run_in_process(run_date, options["types"])
            return
        observer = self._print_decision if dry_run else None
        results = run_all_detection(run_date, types=options["types"], dry_run=dry_run, observer=observer)
        if not results:
            self.stdout.write(NO_TYPE_ENABLED)
            return
        self.stdout.write(f"{'Dry run: would queue' if dry_run else 'Detection'} for {results[0].run_date}:")
        for result in results:
            self.stdout.write("  " + describe(result))
        total = sum(result.queued for result in results)
        self.stdout.write(f"Total {'that would be ' if dry_run else ''}queued: {total}")
        if not dry_run:
            self.deliver([outbox_id for result in results for outbox_id in result.queued_outbox_ids])

    def deliver(self, outbox_ids: list[int]) -> None:
        """With a broker: hand the ids this invocation queued to the workers, in chunks, after commit.

        Rows another run queued are that run's to deliver; the sweeper picks up anything left pending.
        """
        try:
            chunks = enqueue_delivery(outbox_ids)
        except (BrokerError, RedisConnectionError, OSError) as exc:
            pending = Outbox.objects.filter(pk__in=outbox_ids, status=Outbox.Status.PENDING).count()
            raise CommandError(
                f"CELERY_BROKER_URL: broker unreachable after detection ({' '.join(str(exc).split())[:160]}); "
                f"{pending} of {len(outbox_ids)} queued outbox row(s) stay pending, and the sweeper sends them once "
                "the broker and a worker are back. Nothing is lost or sent twice."
            ) from None
        self.stdout.write(f"Handed {len(outbox_ids)} outbox row(s) to the workers in {chunks} delivery task(s).")

    def run_in_process(self, run_date: dt.date | None, types: list[str] | None) -> None:
        """No broker (embedded mode): detection and delivery here, one after the other, under the dispatcher lock."""
        try:
            cycles = run_cycle(run_date, types=types)
        except CycleSkipped as exc:
            raise CommandError(str(exc)) from None
        if not cycles:
            self.stdout.write(NO_TYPE_ENABLED)
            return
        self.stdout.write(f"Detection and delivery in this process (no broker) for {cycles[0].detection.run_date}:")
        for cycle in cycles:
            self.stdout.write("  " + describe(cycle.detection))
        self.stdout.write(f"Total queued: {sum(cycle.detection.queued for cycle in cycles)}")
        for line in cycle_table(cycles):
            self.stdout.write(line)

    def _print_decision(self, decision: CandidateDecision) -> None:
        what = decision.outcome if not decision.reason else f"{decision.outcome} ({decision.reason})"
        self.stdout.write(
            f"  {decision.notification_type:<26} policy {decision.policy_id:>6} family {decision.family_id:>6} "
            f"event {decision.event_date}  {what:<36} to {mask_phone(decision.recipient)} [{decision.language or '-'}]"
        )
