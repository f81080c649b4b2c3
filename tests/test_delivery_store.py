"""delivery.store: the sweeper hands out due rows once, a dead worker's leases are reclaimed, one claim wins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from notifier.delivery.runner import deliver
from notifier.delivery.store import hand_out_due, reclaim_expired
from notifier.models import Outbox
from tests.delivery_helpers import SWEEP_GRACE, swept
from tests.factories import bare_outbox, ega_account, in_threads
from tests.gateway import GatewayServer, Reply

pytestmark = pytest.mark.usefixtures("quick_delivery_settings")


def test_it_hands_out_due_retries_oldest_first_and_once(make_outbox: Callable[..., Outbox]) -> None:
    now = timezone.now()
    retried = {"claimed_at": now - dt.timedelta(hours=1), "attempts": 1}
    late = make_outbox(**retried, next_attempt_at=now - dt.timedelta(minutes=1))
    early = make_outbox(**retried, next_attempt_at=now - dt.timedelta(minutes=5))
    make_outbox(**retried, next_attempt_at=now + dt.timedelta(minutes=5))
    make_outbox(**retried, status=Outbox.Status.FAILED, next_attempt_at=now - dt.timedelta(minutes=9))
    make_outbox(next_attempt_at=now - dt.timedelta(minutes=1))  # fresh from detection: its own task carries it
    assert hand_out_due(1, SWEEP_GRACE, now) == [early.pk]
    assert hand_out_due(10, SWEEP_GRACE, now) == [late.pk]
    assert hand_out_due(10, SWEEP_GRACE, now) == [], "handed out once"


def test_it_marks_rows_a_dead_worker_was_sending_unknown_and_queues_the_untried_again(
    make_outbox: Callable[..., Outbox],
) -> None:
    now = timezone.now()
    long_ago, expired = now - dt.timedelta(minutes=30), now - dt.timedelta(seconds=1)
    leased = {"status": Outbox.Status.SENDING, "claimed_at": long_ago, "lease_owner": "dead"}
    started = make_outbox(**leased, send_started_at=long_ago, lease_expires_at=expired)
    untried = make_outbox(**leased, next_attempt_at=long_ago, lease_expires_at=expired)
    # Claimed half an hour ago, but its run is alive and extends its lease: it is left alone, whatever its age.
    alive = make_outbox(**leased, send_started_at=now, lease_expires_at=now + dt.timedelta(seconds=5))
    assert reclaim_expired(now=now) == (1, 1)
    assert Outbox.objects.get(pk=started.pk).status == Outbox.Status.UNKNOWN
    assert Outbox.objects.get(pk=started.pk).lease_owner == "dead", "kept: the run may still write the outcome"
    assert Outbox.objects.filter(pk=untried.pk).values_list("status", "lease_owner").get() == ("pending", "")
    assert Outbox.objects.get(pk=alive.pk).status == Outbox.Status.SENDING
    assert swept(now) == [untried.pk]


@pytest.mark.django_db(transaction=True)
def test_it_lets_only_one_of_two_concurrent_workers_send(gateway: GatewayServer) -> None:

    ega_account("ega", gateway.url, 10)
    gateway.default = Reply(delay=0.1)
    outbox = bare_outbox("Your policy expires today.")
    results: list[str] = []
    in_threads(lambda: results.append(deliver(outbox.pk)))
    assert sorted(results) == ["sent", "skipped"]
    assert len(gateway.received) == 1


def test_claimed_rows_loads_what_select_related_loads_in_one_statement(
    make_outbox: Callable[..., Outbox],
) -> None:
    """PostgreSQL reads the rows with a fixed SELECT; the instances must be those of select_related, relations
    included (a family without a head too), and reading them must cost no further query."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifier.delivery.store import claimed_rows
    from notifier.models import Family

    rows = [make_outbox(recipient=f"+25571234567{n}") for n in range(3)]
    headless = rows[1].family
    Family.objects.filter(pk=headless.pk).update(head_insuree=None)
    ids = [rows[2].pk, rows[0].pk, rows[1].pk]

    def model_to_dict(instance: Any) -> dict[str, Any]:  # every column, not only the editable ones
        values = {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}
        # Timestamps are read by psycopg's own loader there: the same instants, and the same zone object as the ORM's.
        zones = {f"{name}.tzinfo": value.tzinfo for name, value in values.items() if isinstance(value, dt.datetime)}
        return values | zones

    expected = {
        row.pk: row
        for row in Outbox.objects.filter(pk__in=ids).select_related("policy__product", "family__head_insuree")
    }
    with CaptureQueriesContext(connection) as queries:
        loaded = claimed_rows(ids)
        related = [(row.policy, row.policy.product, row.family, row.family.head_insuree) for row in loaded]
    assert len(queries) == 1
    assert [row.pk for row in loaded] == ids
    for row, (policy, product, family, head) in zip(loaded, related, strict=True):
        want = expected[row.pk]
        assert not row._state.adding and row._state.db == "default"
        assert model_to_dict(row) == model_to_dict(want)
        assert model_to_dict(policy) == model_to_dict(want.policy)
        assert model_to_dict(product) == model_to_dict(want.policy.product)
        assert model_to_dict(family) == model_to_dict(want.family)
        if want.family.head_insuree is None:
            assert head is None
        else:
            assert model_to_dict(head) == model_to_dict(want.family.head_insuree)
    assert related[2][3] is None and related[0][3] is not None
    assert isinstance(loaded[0].created_at, dt.datetime) and loaded[0].created_at.tzinfo is dt.UTC


def test_a_claim_finds_its_rows_by_primary_key_whatever_the_statistics_say(
    make_outbox: Callable[..., Outbox],
) -> None:
    """Statistics taken before a batch of pending rows arrived (as after every detection run) must not lead the
    claim through the index of pending rows: that scans every pending row for each chunk of 50."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifier.delivery.store import claim_chunk, new_owner

    template = make_outbox()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE notifier_outbox")  # statistics of a table with one row
    now = timezone.now()
    fields = {"family_id": template.family_id, "event_date": template.event_date, "recipient": template.recipient}
    batch = Outbox.objects.bulk_create(
        Outbox(policy_id=template.policy_id + index, notification_type="expiry", language="en", **fields)
        for index in range(1, 5001)
    )
    Outbox.objects.filter(pk__in=[row.pk for row in batch]).update(next_attempt_at=now - dt.timedelta(minutes=1))
    ids = [row.pk for row in batch[1000:1050]]
    with CaptureQueriesContext(connection) as queries:
        claimed = claim_chunk(ids, now, new_owner())
    assert sorted(claimed) == sorted(ids)
    [claim] = [query["sql"] for query in queries if "UPDATE" in query["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE notifier_outbox SET status = 'pending' WHERE id = ANY(%s)", [ids])
        cursor.execute(f"EXPLAIN {claim}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "outbox_status_due_idx" not in plan, plan
