"""Detection at scale: the number of queries does not grow with the population, and two concurrent runs on
PostgreSQL queue each outbox row exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifier import detection
from notifier.detection import DetectionResult, run_detection
from notifier.models import Decision, DetectionRun, Outbox, Product
from notifier.types import NOTIFICATION_TYPES
from tests.factories import DAY, TODAY, at, bulk_families, bulk_policies, in_threads


def _population(product: Product, notification_type: str, event: Any, size: int) -> None:
    """`size` due policies, a fifth of them in families without consent (so both outcomes are written)."""
    refused = size // 5
    bulk_policies(bulk_families(None, size - refused), product, notification_type, event)
    bulk_policies(bulk_families(None, refused, approval=False), product, notification_type, event)


def _counted_run(notification_type: str, run_date: Any) -> tuple[int, DetectionResult]:
    with CaptureQueriesContext(connection) as queries:
        result = run_detection(notification_type, run_date)
    return len(queries.captured_queries), result


@pytest.mark.django_db
@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_runs_the_same_number_of_queries_for_10_and_1000_policies(
    time_machine: Any, enable: Any, product: Product, notification_type: str
) -> None:
    time_machine.move_to(at(TODAY + 60 * DAY, 12), tick=False)
    warm_up_day, small_day, large_day = TODAY - 10 * DAY, TODAY, TODAY + 30 * DAY
    for day, size in ((warm_up_day, 10), (small_day, 10), (large_day, 1000)):
        _population(product, notification_type, day, size)
    # Both measured runs then have a previous run, and both find the previous day's refusals obsolete.
    run_detection(notification_type, warm_up_day)

    small_queries, small = _counted_run(notification_type, small_day)
    large_queries, large = _counted_run(notification_type, large_day)

    assert (small.queued, small.skipped) == (8, {"no_consent": 2})
    assert (large.queued, large.skipped) == (800, {"no_consent": 200})
    assert small.obsolete == large.obsolete == 2
    assert large_queries == small_queries
    assert detection.CHUNK_SIZE >= 1000  # one chunk each: reads are one query, writes a fixed few per chunk


@pytest.mark.django_db(transaction=True)
def test_it_queues_each_outbox_row_exactly_once_with_two_concurrent_runs(
    time_machine: Any, enable: Any, product: Product
) -> None:
    time_machine.move_to(at(TODAY, 12), tick=False)
    size = detection.CHUNK_SIZE + 500  # more than one chunk, so the runs interleave chunk by chunk
    bulk_policies(bulk_families(None, size), product, "expiration_of_policy", TODAY)
    results: list[DetectionResult] = []

    in_threads(lambda: results.append(run_detection("expiration_of_policy", TODAY)), timeout=120)

    first, second = results
    assert first.queued + second.queued == size
    assert not set(first.queued_outbox_ids) & set(second.queued_outbox_ids)
    all_ids = set(first.queued_outbox_ids) | set(second.queued_outbox_ids)
    assert all_ids == set(Outbox.objects.values_list("id", flat=True))
    assert Outbox.objects.values("policy_id").distinct().count() == size
    assert Decision.objects.filter(outcome="queued").count() == size
    assert DetectionRun.objects.filter(completed_at__isnull=False).count() == 2
