"""The tasks in the embedded mode (memory broker, eager): the same code a worker runs, in this process."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from notifier import tasks
from notifier.delivery import handoff
from notifier.demo import load_demo
from notifier.detection import run_all_detection
from notifier.locks import dispatcher_lock
from notifier.models import DispatcherRun, Outbox
from notifier.types import NOTIFICATION_TYPES

ALL_TYPES = dict.fromkeys(NOTIFICATION_TYPES, True)
# Committed transactions, so that delivery really is enqueued on commit as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def embedded(settings):
    assert settings.CELERY_TASK_ALWAYS_EAGER, "these tests run the tasks in-process (no CELERY_BROKER_URL)"
    settings.REDIS_URL = ""  # in-process locks, breaker and rate limit, as in the embedded mode
    settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": ALL_TYPES, "rate_limit_per_second": 1000.0}


@pytest.fixture
def scheme(embedded) -> dt.date:
    today = timezone.localdate()
    load_demo(today=today, families=42, seed=3)
    return today


def test_it_runs_a_whole_cycle_from_the_dispatcher(scheme, ega_gateway):
    outcome = tasks.send_notification_messages(scheme.isoformat())
    assert outcome["skipped"] is False
    assert sorted(outcome["types"]) == sorted(NOTIFICATION_TYPES)
    assert outcome["errors"] == 0
    rows = Outbox.objects.all()
    assert rows.count() > 0
    assert set(rows.values_list("status", flat=True)) == {Outbox.Status.SENT}
    assert set(rows.values_list("notification_type", flat=True)) == set(NOTIFICATION_TYPES)
    assert sorted(ega_gateway.counts().elements()) == sorted(
        (recipient.lstrip("+"), text) for recipient, text in rows.values_list("recipient", "text")
    )
    run = DispatcherRun.objects.get()
    assert run.completed_at is not None
    assert run.run_date == scheme
    assert sorted(run.notification_types) == sorted(NOTIFICATION_TYPES)


def test_it_sends_nothing_more_when_the_dispatcher_runs_again(scheme, ega_gateway):
    tasks.send_notification_messages(scheme.isoformat())
    sent = sum(ega_gateway.counts().values())
    second = tasks.send_notification_messages(scheme.isoformat())
    assert second["skipped"] is False
    assert sum(ega_gateway.counts().values()) == sent
    assert DispatcherRun.objects.filter(completed_at__isnull=False).count() == 2


def test_it_skips_a_dispatcher_run_while_another_holds_the_lock(scheme, ega_gateway):
    holder = dispatcher_lock()
    assert holder.acquire()
    try:
        assert tasks.send_notification_messages(scheme.isoformat()) == {"skipped": True}
    finally:
        holder.release()
    assert not DispatcherRun.objects.exists()
    assert not Outbox.objects.exists()
    assert tasks.send_notification_messages(scheme.isoformat())["skipped"] is False


def test_it_dispatches_only_enabled_types(scheme, ega_gateway, settings):
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "eligibleNotificationTypes": {**dict.fromkeys(NOTIFICATION_TYPES, False), "expiration_of_policy": True},
    }
    outcome = tasks.send_notification_messages(scheme.isoformat())
    assert outcome["types"] == ["expiration_of_policy"]
    assert set(Outbox.objects.values_list("notification_type", flat=True)) == {"expiration_of_policy"}


def test_it_refuses_an_unknown_notification_type(embedded):
    with pytest.raises(ValueError, match="notification_type: unknown type 'birthday'"):
        tasks.detect_notifications("birthday", "2026-11-28")


def test_it_enqueues_delivery_in_chunks_after_commit(scheme, ega_gateway, settings):
    settings.NOTIFIER_DELIVERY_CHUNK_SIZE = 3
    run_all_detection(scheme)
    ids = list(Outbox.objects.order_by("id").values_list("id", flat=True)[:13])
    assert len(ids) == 13
    with transaction.atomic():
        assert handoff.enqueue_delivery(ids) == 5  # 3+3+3+3+1: 13 ids fill more than SPREAD chunks of 3
        assert not Outbox.objects.filter(status=Outbox.Status.SENT).exists()  # nothing runs before the commit
    assert set(Outbox.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Outbox.Status.SENT}
    assert sum(ega_gateway.counts().values()) == 13


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (0, []),
        (1, [1]),
        (4, [4]),
        (9, [9]),  # a chunk of its own: cut, each piece would cost more as a task than it gains
        (10, [5, 5]),  # fewer than SPREAD chunks of 50: cut, so that several workers send them
        (19, [7, 7, 5]),
        (25, [7, 7, 7, 4]),
        (50, [13, 13, 13, 11]),  # SPREAD pieces from SPREAD * MIN_SPREAD_ROWS ids on
        (150, [38, 38, 38, 36]),
        (200, [50, 50, 50, 50]),
        (401, [50] * 8 + [1]),
    ],
)
def test_a_small_batch_is_spread_over_the_workers_and_a_big_one_keeps_the_chunk_size(settings, count, sizes):
    settings.NOTIFIER_DELIVERY_CHUNK_SIZE = 50
    assert (handoff.SPREAD, handoff.MIN_SPREAD_ROWS) == (4, 5)
    chunks = handoff.split(range(1000, 1000 + count))
    assert [len(chunk) for chunk in chunks] == sizes
    assert [outbox_id for chunk in chunks for outbox_id in chunk] == list(range(1000, 1000 + count))


def test_it_requeues_pending_rows_whose_task_was_lost(scheme, ega_gateway, settings):
    settings.NOTIFIER_SWEEP_GRACE_SECONDS = 600
    settings.NOTIFIER_DELIVERY_CHUNK_SIZE = 10
    with time_machine.travel(timezone.now() - dt.timedelta(hours=1), tick=True):
        results = run_all_detection(scheme)  # queued, but no delivery task ever enqueued: "lost"
    queued = sum(result.queued for result in results)
    assert queued > 10
    outcome = tasks.sweep_outbox()
    assert outcome == {
        "skipped": False,
        "requeued": queued,
        "chunks": len(handoff.split(range(queued))),
        "abandoned": 0,
    }
    assert set(Outbox.objects.values_list("status", flat=True)) == {Outbox.Status.SENT}
    assert sum(ega_gateway.counts().values()) == queued
    assert tasks.sweep_outbox()["requeued"] == 0


def test_it_leaves_a_fresh_pending_row_to_its_own_task(scheme, ega_gateway, settings):
    settings.NOTIFIER_SWEEP_GRACE_SECONDS = 600
    run_all_detection(scheme)  # just queued: its delivery task may still be in the queue
    assert tasks.sweep_outbox()["requeued"] == 0
    assert set(Outbox.objects.values_list("status", flat=True)) == {Outbox.Status.PENDING}
    assert sum(ega_gateway.counts().values()) == 0


def test_it_requeues_a_due_retry_and_a_resent_row_without_waiting_for_the_grace(scheme, ega_gateway, settings):
    settings.NOTIFIER_SWEEP_GRACE_SECONDS = 600
    run_all_detection(scheme)
    now = timezone.now()
    retry, resent, fresh = Outbox.objects.order_by("id")[:3]
    Outbox.objects.filter(pk=retry.pk).update(
        attempts=1, claimed_at=now - dt.timedelta(minutes=1), next_attempt_at=now - dt.timedelta(seconds=5)
    )
    Outbox.objects.filter(pk=resent.pk).update(requeued_at=now, next_attempt_at=now)
    Outbox.objects.filter(pk=fresh.pk).update(next_attempt_at=now + dt.timedelta(minutes=5))
    assert tasks.sweep_outbox()["requeued"] == 2
    assert Outbox.objects.get(pk=retry.pk).status == Outbox.Status.SENT
    assert Outbox.objects.get(pk=resent.pk).status == Outbox.Status.SENT
    assert Outbox.objects.get(pk=fresh.pk).status == Outbox.Status.PENDING


def test_it_marks_a_send_abandoned_by_a_dead_worker_unknown_and_never_resends_it(scheme, ega_gateway):
    run_all_detection(scheme)
    now = timezone.now()
    abandoned, in_flight = Outbox.objects.order_by("id")[:2]
    Outbox.objects.filter(pk=abandoned.pk).update(
        status=Outbox.Status.SENDING,
        claimed_at=now - dt.timedelta(minutes=2),
        send_started_at=now - dt.timedelta(minutes=2),
        lease_owner="dead",
        lease_expires_at=now - dt.timedelta(minutes=1),
    )
    Outbox.objects.filter(pk=in_flight.pk).update(
        status=Outbox.Status.SENDING,
        claimed_at=now - dt.timedelta(hours=1),
        send_started_at=now - dt.timedelta(hours=1),
        lease_owner="alive",
        lease_expires_at=now + dt.timedelta(minutes=1),
    )
    Outbox.objects.exclude(pk__in=[abandoned.pk, in_flight.pk]).delete()
    outcome = tasks.sweep_outbox()
    assert outcome["abandoned"] == 1
    assert outcome["requeued"] == 0
    assert Outbox.objects.get(pk=abandoned.pk).status == Outbox.Status.UNKNOWN
    assert Outbox.objects.get(pk=in_flight.pk).status == Outbox.Status.SENDING
    assert sum(ega_gateway.counts().values()) == 0


def test_it_skips_a_sweep_while_another_sweeps(embedded):
    from notifier.locks import NonBlockingLock

    holder = NonBlockingLock("sweeper", 60)
    assert holder.acquire()
    try:
        assert tasks.sweep_outbox() == {"skipped": True}
    finally:
        holder.release()


def test_it_detects_and_delivers_in_one_process_without_a_broker(scheme, ega_gateway):
    out = io.StringIO()
    call_command("send_notifications", "--date", scheme.isoformat(), stdout=out)
    output = out.getvalue()
    assert "Detection and delivery in this process (no broker)" in output
    sent = Outbox.objects.filter(status=Outbox.Status.SENT).count()
    assert sent == Outbox.objects.count() > 0
    assert sum(ega_gateway.counts().values()) == sent
    total = next(line for line in output.splitlines() if line.startswith("total "))
    assert total.split()[1:3] == [str(sent), str(sent)]  # queued, sent
    assert DispatcherRun.objects.filter(completed_at__isnull=False).count() == 1


def test_it_refuses_to_run_in_process_while_the_dispatcher_runs(scheme, ega_gateway):
    holder = dispatcher_lock()
    assert holder.acquire()
    try:
        with pytest.raises(CommandError, match="another dispatcher run is in progress"):
            call_command("send_notifications", stdout=io.StringIO())
    finally:
        holder.release()
    assert not Outbox.objects.exists()


def test_it_hands_the_rows_to_the_workers_when_a_broker_is_configured(scheme, ega_gateway, settings):
    settings.EMBEDDED_BROKER = False  # the command then only enqueues; eager mode runs the tasks right here
    settings.NOTIFIER_DELIVERY_CHUNK_SIZE = 10
    out = io.StringIO()
    call_command("send_notifications", "--date", scheme.isoformat(), stdout=out)
    queued = Outbox.objects.count()
    per_type = Counter(Outbox.objects.values_list("notification_type", flat=True))
    # Each type's rows are handed off on their own; here every type's batch is too small to cut (fewer than twice
    # MIN_SPREAD_ROWS): one task per type.
    assert max(per_type.values()) < 2 * handoff.MIN_SPREAD_ROWS
    chunks = sum(len(handoff.split(range(count))) for count in per_type.values())
    assert chunks == len(per_type)
    assert f"Handed {queued} outbox row(s) to the workers in {chunks} delivery task(s)." in out.getvalue()
    assert Outbox.objects.filter(status=Outbox.Status.SENT).count() == queued
