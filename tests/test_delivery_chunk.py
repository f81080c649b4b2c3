"""deliver_chunk(): a chunk of rows in one run — mixed outcomes, one connection, constant queries, crashes mid-chunk."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from notifier.delivery.runner import deliver_chunk
from notifier.delivery.store import claim_chunk, reclaim_expired
from notifier.models import DeliveryAttempt, Outbox, ProviderAccount
from tests.delivery_helpers import Outcome, attempts, swept
from tests.factories import bare_outboxes, ega_account
from tests.gateway import GatewayServer, Reply

pytestmark = pytest.mark.usefixtures("quick_delivery_settings")

CRASHING_PROVIDER = "tests.crash_provider.CrashingProvider"


def crashing_account(url: str, crash_after: int, crash_with: str) -> ProviderAccount:
    config = {"url": url + "/send", "crash_after": crash_after, "crash_with": crash_with}
    return ProviderAccount.objects.create(name="crashing", provider="CrashingTestProvider", priority=10, config=config)


def received_recipients(gateway: GatewayServer) -> list[str]:
    """The recipients of what the gateway received, as E.164 (eGA sends digits only, in a signed `data`)."""
    found = []
    for request in gateway.received:
        body = json.loads(request.body)
        found.append(body["to"] if "to" in body else "+" + json.loads(body["data"])["recipients"])
    return found


def test_it_delivers_a_chunk_mixing_sent_transient_permanent_and_unknown_outcomes(
    gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("ega", gateway.url, 10)
    sent, transient, permanent, unknown = (make_outbox(recipient=f"+25571234560{n}") for n in range(4))
    not_due = make_outbox(next_attempt_at=timezone.now() + dt.timedelta(minutes=5))
    gateway.queue(
        Reply(), Reply(status=503, body=b"busy"), Reply(status=400, body=b'{"error": "rejected"}'), Reply(delay=1.0)
    )
    ids = [sent.pk, transient.pk, permanent.pk, unknown.pk, not_due.pk]
    assert deliver_chunk(ids) == {
        sent.pk: "sent",
        transient.pk: "pending",
        permanent.pk: "failed",
        unknown.pk: "unknown",
        not_due.pk: "skipped",
    }
    rows = {row.pk: row for row in Outbox.objects.filter(pk__in=ids)}
    assert [rows[pk].status for pk in ids] == ["sent", "pending", "failed", "unknown", "pending"]
    assert [rows[pk].attempts for pk in ids] == [1, 1, 1, 1, 0]
    assert rows[sent.pk].sent_at is not None and rows[sent.pk].provider_reference == f"outbox-{sent.pk}"
    assert rows[transient.pk].next_attempt_at > timezone.now() + dt.timedelta(seconds=29)
    assert "rejected" in rows[permanent.pk].last_error and "HTTP 503" in rows[transient.pk].last_error
    for row in (sent, transient, permanent, unknown):  # rendered once, kept for retries
        assert rows[row.pk].text and rows[row.pk].encoding == "GSM-7"
    assert [attempts(row) for row in (sent, transient, permanent, unknown)] == [
        [("ega", Outcome.SUCCESS, None)],
        [("ega", Outcome.TRANSIENT, 503)],
        [("ega", Outcome.PERMANENT, 400)],
        [("ega", Outcome.UNKNOWN, None)],
    ]
    assert len(gateway.received) == 4
    assert deliver_chunk(ids) == dict.fromkeys(ids, "skipped")
    assert len(gateway.received) == 4


def test_it_writes_any_text_a_gateway_or_a_template_holds(
    gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    """Outcomes, texts and attempts travel to PostgreSQL as JSON: quotes, backslashes, line breaks, non-ASCII and
    a NUL (which a text column cannot hold) come back as written, the NUL replaced."""
    from notifier.models import NotificationTemplate

    ega_account("ega", gateway.url, 10)
    odd = 'Habari "{Name}" \\ 😀 ümlaut ☎\nmstari'
    NotificationTemplate.objects.filter(notification_type="expiration_of_policy", language="en").update(text=odd)
    rendered, refused = make_outbox(recipient="+255712345601"), make_outbox(recipient="+255712345602")
    gateway.queue(Reply(), Reply(status=400, body='{"error": "nambari \u0000 si sahihi ✗ Ω"}'.encode()))
    assert deliver_chunk([rendered.pk, refused.pk]) == {rendered.pk: "sent", refused.pk: "failed"}
    rendered.refresh_from_db()
    refused.refresh_from_db()
    assert rendered.text.startswith('Habari "') and rendered.text.endswith('" \\ 😀 ümlaut ☎\nmstari')
    assert rendered.encoding == "UCS-2" and rendered.segments == 1
    assert "nambari \ufffd si sahihi ✗ Ω" in refused.last_error
    [attempt] = DeliveryAttempt.objects.filter(outbox=refused)
    assert (attempt.outcome, attempt.http_status) == ("permanent", 400)
    assert "nambari \ufffd si sahihi ✗ Ω" in attempt.error


def test_it_reuses_one_connection_for_the_messages_of_a_chunk(
    gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("ega", gateway.url, 10)
    rows = [make_outbox(recipient=f"+25571234560{n}") for n in range(3)]
    assert set(deliver_chunk([row.pk for row in rows]).values()) == {"sent"}
    assert len(gateway.received) == 3
    assert len({request.client for request in gateway.received}) == 1


@pytest.mark.parametrize(("size", "marks"), [(5, "redis"), (50, "redis"), (5, "database"), (50, "database")])
def test_it_delivers_a_chunk_in_as_many_queries_whatever_its_size(
    settings: Any, size: int, marks: str, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    """Claim, rows (policy, product, family, head), templates, texts, accounts, permanent failures, outcomes,
    attempts; and, with the send marks in the database, one per message."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.NOTIFIER_DELIVERY_FLUSH_SECONDS = 3600  # outcomes written once, at the end of the chunk
    settings.NOTIFIER_DELIVERY_MARKS = marks
    ega_account("ega", gateway.url, 10)
    languages = ["en", "sw", "fr", "fr-CA", "xx"]
    rows = [make_outbox(language=languages[n % 5], recipient=f"+2557123{n:05d}") for n in range(size)]
    with CaptureQueriesContext(connection) as queries:
        statuses = deliver_chunk([row.pk for row in rows])
    assert list(statuses.values()) == ["sent"] * size
    assert len(gateway.received) == size
    # Fixed per chunk. The mark that a message's send has started (what lets the sweeper queue again, rather than
    # give up on, what a killed worker never tried) goes with the Redis admission, or is one statement per message.
    per_message = 1 if marks == "database" else 0
    assert len(queries) == 8 + per_message * size, [query["sql"][:80] for query in queries.captured_queries]
    assert Outbox.objects.filter(status=Outbox.Status.SENT, attempts=1).exclude(text="").count() == size
    assert DeliveryAttempt.objects.filter(outcome=Outcome.SUCCESS).count() == size


def test_it_renders_a_chunk_like_one_row_at_a_time(gateway: GatewayServer, make_outbox: Callable[..., Outbox]) -> None:
    from notifier.rendering import render_outbox

    ega_account("ega", gateway.url, 10)
    rows = [make_outbox(language=language) for language in ("en", "sw", "fr", "fr-CA", "xx", "")]
    expected = {row.pk: render_outbox(row).text for row in rows}
    deliver_chunk([row.pk for row in rows])
    assert dict(Outbox.objects.filter(pk__in=expected).values_list("pk", "text")) == expected
    assert len(set(expected.values())) >= 3, "the rows were rendered in several languages"


@pytest.mark.django_db(transaction=True)
def test_it_leaves_the_rows_another_worker_is_claiming_to_it(gateway: GatewayServer) -> None:
    """While another worker's claim holds row 2 locked (its transaction still open), this chunk takes 1 and 3."""
    from django.db import connection, transaction

    ega_account("ega", gateway.url, 10)
    first, second, third = bare_outboxes(3)
    locked, release = threading.Event(), threading.Event()
    other: list[list[int]] = []

    def other_worker() -> None:
        try:
            with transaction.atomic():
                other.append(claim_chunk([second.pk], timezone.now()))
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert locked.wait(timeout=10)
        statuses = deliver_chunk([first.pk, second.pk, third.pk])
    finally:
        release.set()
        thread.join(timeout=10)
    assert statuses == {first.pk: "sent", second.pk: "skipped", third.pk: "sent"}
    assert other == [[second.pk]]
    assert sorted(received_recipients(gateway)) == [first.recipient, third.recipient]
    assert Outbox.objects.get(pk=second.pk).status == Outbox.Status.SENDING  # the other worker's to finish
    assert deliver_chunk([first.pk, second.pk, third.pk]) == dict.fromkeys([first.pk, second.pk, third.pk], "skipped")


@pytest.mark.django_db(transaction=True)
def test_it_records_a_provider_bug_mid_chunk_as_unknown_and_goes_on(settings: Any, gateway: GatewayServer) -> None:
    settings.NOTIFIER_PROVIDER_CLASSES = [*settings.NOTIFIER_PROVIDER_CLASSES, CRASHING_PROVIDER]
    crashing_account(gateway.url, crash_after=2, crash_with="raise")
    rows = bare_outboxes(4)
    ids = [row.pk for row in rows]
    assert list(deliver_chunk(ids).values()) == ["sent", "sent", "unknown", "unknown"]
    assert "RuntimeError: provider bug after 2 sends" in Outbox.objects.get(pk=ids[2]).last_error
    assert received_recipients(gateway) == [rows[0].recipient, rows[1].recipient]
    with time_machine.travel(timezone.now() + dt.timedelta(days=1)):
        assert swept() == []
        assert set(deliver_chunk(ids).values()) == {"skipped"}
    assert len(gateway.received) == 2


@pytest.mark.django_db(transaction=True)
def test_it_never_resends_what_a_chunk_sent_before_the_worker_stopped(settings: Any, gateway: GatewayServer) -> None:
    from tests.crash_provider import WorkerStopped

    # A daytime moment in the scheme's zone: two hours later is the same day, so the untried rows go out as they
    # were rendered (a row held past its event date is reworded, which these bare rows cannot be: no head insuree).
    with time_machine.travel(dt.datetime(2026, 11, 28, 6, 0, tzinfo=dt.UTC), tick=True):
        _stop_mid_chunk_then_deliver_the_rest(settings, gateway, stopped=WorkerStopped)


def _stop_mid_chunk_then_deliver_the_rest(settings: Any, gateway: GatewayServer, stopped: type[BaseException]) -> None:
    settings.NOTIFIER_PROVIDER_CLASSES = [*settings.NOTIFIER_PROVIDER_CLASSES, CRASHING_PROVIDER]
    account = crashing_account(gateway.url, crash_after=2, crash_with="stop")
    rows = bare_outboxes(5)
    ids = [row.pk for row in rows]
    with pytest.raises(stopped):
        deliver_chunk(ids)
    statuses = dict(Outbox.objects.filter(pk__in=ids).values_list("pk", "status"))
    # Sent: written on the way out. In the provider's hands: unknown. Never tried: pending, after a backoff.
    assert [statuses[pk] for pk in ids] == ["sent", "sent", "unknown", "pending", "pending"]
    assert [attempts(row) for row in rows[:2]] == [[("crashing", Outcome.SUCCESS, None)]] * 2
    assert swept() == []
    account.config = {**account.config, "crash_after": 100}
    account.save()
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        assert sorted(swept()) == ids[3:]
        assert list(deliver_chunk(ids).values()) == ["skipped", "skipped", "skipped", "sent", "sent"]
    assert received_recipients(gateway) == [row.recipient for row in rows[:2] + rows[3:]]


@pytest.mark.django_db(transaction=True)
def test_it_never_resends_what_a_killed_worker_sent(settings: Any, gateway: GatewayServer) -> None:
    """The process ends mid-chunk without any cleanup (os._exit): what it sent stays `sending`, then `unknown`."""
    import os
    import subprocess
    import sys

    from tests.processes import subprocess_database_url

    account = crashing_account(gateway.url, crash_after=3, crash_with="exit")
    rows = bare_outboxes(6)
    ids = [row.pk for row in rows]
    script = (
        "import django, sys; django.setup()\n"
        "from django.conf import settings\n"
        f"settings.NOTIFIER_PROVIDER_CLASSES = [*settings.NOTIFIER_PROVIDER_CLASSES, {CRASHING_PROVIDER!r}]\n"
        "from notifier.delivery.runner import deliver_chunk\n"
        f"deliver_chunk({ids!r})\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "NOTIFIER_CONFIG": '{"quiet_hours": null}',
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=Path(__file__).resolve().parent.parent, timeout=60, check=False
    )
    assert done.returncode == 70
    assert received_recipients(gateway) == [row.recipient for row in rows[:3]]
    assert set(Outbox.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Outbox.Status.SENDING}
    assert set(deliver_chunk(ids).values()) == {"skipped"}
    # Three sent and one in the provider's hands had started their send: unknown. The last two were never tried.
    assert reclaim_expired(now=timezone.now()) == (0, 0), "the leases (60 s) have not expired yet"
    later = timezone.now() + dt.timedelta(seconds=61)
    assert reclaim_expired(now=later) == (2, 4)
    statuses = dict(Outbox.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [statuses[pk] for pk in ids] == ["unknown"] * 4 + ["pending"] * 2
    assert sorted(swept(later)) == ids[4:]
    Outbox.objects.filter(pk__in=ids[4:]).update(next_attempt_at=timezone.now())
    ProviderAccount.objects.update(config={**account.config, "crash_after": 100})
    settings.NOTIFIER_PROVIDER_CLASSES = [*settings.NOTIFIER_PROVIDER_CLASSES, CRASHING_PROVIDER]
    assert list(deliver_chunk(ids).values()) == ["skipped"] * 4 + ["sent"] * 2
    assert received_recipients(gateway) == [row.recipient for row in rows[:3] + rows[4:]]
