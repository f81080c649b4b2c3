from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifier.cycle import cycle_table
from notifier.detection import DetectionResult
from notifier.detection_store import CandidateDecision
from notifier.dispatch import DispatchSkipped, TypeDispatch, dispatch
from notifier.management.options import NO_TYPE_ENABLED, parse_date
from notifier.models import Outbox
from notifier.types import NOTIFICATION_TYPES


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
        "One dispatcher run by hand (notifier.dispatch): under the dispatcher lock, catch up family phones, record "
        "the run, detect due notifications (all enabled types, or --type) for a scheme day, then deliver them here "
        "(no broker) or hand them to the workers. --dry-run writes nothing and prints each candidate."
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
        in_process = bool(settings.EMBEDDED_BROKER)
        try:
            outcome = dispatch(
                run_date,
                types=options["types"],
                dry_run=dry_run,
                in_process=in_process,
                observer=self._print_decision if dry_run else None,
            )
        except DispatchSkipped as exc:
            raise CommandError(str(exc)) from None
        if not outcome.types:
            self.stdout.write(NO_TYPE_ENABLED)
            return
        if dry_run:
            heading = "Dry run: would queue"
        elif in_process:
            heading = "Detection and delivery in this process (no broker)"
        else:
            heading = "Detection"
        self.stdout.write(f"{heading} for {outcome.run_date} (family phones caught up: {outcome.phones_refreshed}):")
        for item in outcome.types:
            if item.detection is None:
                self.stdout.write(f"  {item.notification_type:<26} detection failed: {item.error}")
            else:
                self.stdout.write("  " + describe(item.detection))
        total = sum(item.queued for item in outcome.types)
        self.stdout.write(f"Total {'that would be ' if dry_run else ''}queued: {total}")
        if not dry_run and in_process:
            for line in cycle_table(outcome.types):
                self.stdout.write(line)
        elif not dry_run:
            # Rows another run queued are that run's to deliver; the sweeper picks up anything left pending.
            chunks = sum(item.handed_off_chunks for item in outcome.types)
            self.stdout.write(f"Handed {total} outbox row(s) to the workers in {chunks} delivery task(s).")
            self._refuse_lost_broker(outcome.types)
        if outcome.errors:
            failed = ", ".join(f"{name} ({error})" for name, error in outcome.errors.items())
            raise CommandError(f"detection failed for {failed}; the other types ran")

    def _refuse_lost_broker(self, items: list[TypeDispatch]) -> None:
        lost = [item for item in items if item.handoff_error]
        if not lost:
            return
        ids = [outbox_id for item in lost if item.detection for outbox_id in item.detection.queued_outbox_ids]
        pending = Outbox.objects.filter(pk__in=ids, status=Outbox.Status.PENDING).count()
        raise CommandError(
            f"CELERY_BROKER_URL: broker unreachable after detection ({lost[0].handoff_error}); "
            f"{pending} of {len(ids)} queued outbox row(s) stay pending, and the sweeper sends them once "
            "the broker and a worker are back. Nothing is lost or sent twice."
        )

    def _print_decision(self, decision: CandidateDecision) -> None:
        what = decision.outcome if not decision.reason else f"{decision.outcome} ({decision.reason})"
        self.stdout.write(
            f"  {decision.notification_type:<26} policy {decision.policy_id:>6} family {decision.family_id:>6} "
            f"event {decision.event_date}  {what:<36} to {mask_phone(decision.recipient)} [{decision.language or '-'}]"
        )
