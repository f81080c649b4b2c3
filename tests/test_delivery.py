"""deliver(): claim, render, ordered fallback, retries, breaker, unknown outcomes, attempt log — real HTTP servers."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from django.utils import timezone

from notifier import coordination
from notifier.delivery.operator import cancel, resend
from notifier.delivery.runner import deliver, deliver_chunk
from notifier.delivery.store import claim_chunk, hand_out_due, reclaim_expired
from notifier.models import DeliveryAttempt, NotificationTemplate, Outbox, ProviderAccount
from tests.factories import bare_outbox, bare_outboxes, ega_account, in_threads
from tests.gateway import GatewayServer, Reply, closed_port_url

Outcome = DeliveryAttempt.Outcome
T0 = dt.datetime(2026, 11, 28, 7, 0, tzinfo=dt.UTC)
SWEEP_GRACE = dt.timedelta(seconds=600)  # NOTIFIER_SWEEP_GRACE_SECONDS


def swept(now: dt.datetime | None = None) -> list[int]:
    """What the sweeper hands out now (and marks as handed out): due pending rows that no delivery task carries."""
    return hand_out_due(100, SWEEP_GRACE, now)


@pytest.fixture(autouse=True)
def quick_settings(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "http_connect_timeout_seconds": 0.5,
        "http_read_timeout_seconds": 0.3,
        "max_attempts": 3,
        "circuit_breaker": {"failure_threshold": 10, "window_seconds": 60, "cooldown_seconds": 30},
    }


def text_account(folder: Path, priority: int) -> ProviderAccount:
    return ProviderAccount.objects.create(
        name="files",
        provider="TextNotificationProvider",
        priority=priority,
        config={"DestinationFolder": str(folder)},
    )


def attempts(outbox: Outbox) -> list[tuple[str, str, int | None]]:
    return [
        (a.provider_account.name if a.provider_account else "", a.outcome, a.http_status)
        for a in DeliveryAttempt.objects.filter(outbox=outbox).select_related("provider_account")
    ]


def test_it_sends_through_the_first_provider_and_records_the_attempt(
    gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    account = ega_account("ega", gateway.url, 10)
    outbox = make_outbox()
    assert deliver(outbox.pk) == "sent"
    outbox.refresh_from_db()
    assert outbox.status == Outbox.Status.SENT
    assert outbox.provider_account == account
    assert outbox.provider_reference == f"outbox-{outbox.pk}"
    assert outbox.attempts == 1 and outbox.sent_at is not None
    assert outbox.family.head_insuree is not None and (outbox.family.head_insuree.chf_id or "-") in outbox.text
    assert outbox.encoding == "GSM-7" and outbox.segments >= 1
    assert attempts(outbox) == [("ega", Outcome.SUCCESS, None)]
    [request] = gateway.received
    sent = json.loads(json.loads(request.body)["data"])
    assert (sent["recipients"], sent["message"]) == ("255712345678", outbox.text)


def test_it_sends_nothing_on_a_second_delivery(gateway: GatewayServer, make_outbox: Callable[..., Outbox]) -> None:
    ega_account("ega", gateway.url, 10)
    outbox = make_outbox()
    assert deliver(outbox.pk) == "sent"
    assert deliver(outbox.pk) == "skipped"
    assert len(gateway.received) == 1
    assert DeliveryAttempt.objects.filter(outbox=outbox).count() == 1


def test_it_does_not_claim_a_row_that_is_not_due(gateway: GatewayServer, make_outbox: Callable[..., Outbox]) -> None:
    ega_account("ega", gateway.url, 10)
    outbox = make_outbox(next_attempt_at=timezone.now() + dt.timedelta(minutes=5))
    assert deliver(outbox.pk) == "skipped"
    assert gateway.received == []
    assert Outbox.objects.get(pk=outbox.pk).status == Outbox.Status.PENDING


def test_it_falls_back_to_the_next_provider_in_priority_order(
    gateway: GatewayServer, second_gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    second = ega_account("second", second_gateway.url, 20)
    ega_account("first", gateway.url, 10)
    ega_account("disabled", second_gateway.url, 5, enabled=False)
    gateway.default = Reply(status=500, body=b"down")
    outbox = make_outbox()
    assert deliver(outbox.pk) == "sent"
    assert attempts(outbox) == [("first", Outcome.TRANSIENT, 500), ("second", Outcome.SUCCESS, None)]
    assert Outbox.objects.get(pk=outbox.pk).provider_account == second
    assert len(gateway.received) == 1 and len(second_gateway.received) == 1


def test_it_never_retries_a_permanent_failure_on_that_provider(
    gateway: GatewayServer, second_gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("first", gateway.url, 10)
    ega_account("second", second_gateway.url, 20)
    gateway.default = Reply(status=400, body=b'{"error": "rejected"}')
    second_gateway.queue(Reply(status=503, body=b"busy"))
    outbox = make_outbox()
    assert deliver(outbox.pk) == "pending"
    retry_at = Outbox.objects.get(pk=outbox.pk).next_attempt_at
    with time_machine.travel(retry_at + dt.timedelta(seconds=1)):
        assert deliver(outbox.pk) == "sent"
    assert len(gateway.received) == 1, "the permanent failure was not retried on the first provider"
    assert attempts(outbox) == [
        ("first", Outcome.PERMANENT, 400),
        ("second", Outcome.TRANSIENT, 503),
        ("second", Outcome.SUCCESS, None),
    ]


def test_it_fails_at_once_when_every_provider_refuses_permanently(
    gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("ega", gateway.url, 10)
    gateway.default = Reply(status=200, body=b'{"error": "Invalid mobile number"}')
    outbox = make_outbox()
    assert deliver(outbox.pk) == "failed"
    outbox.refresh_from_db()
    assert outbox.status == Outbox.Status.FAILED
    assert "Invalid mobile number" in outbox.last_error
    assert outbox.pk not in swept()


def test_it_backs_off_and_stops_at_max_attempts(gateway: GatewayServer, make_outbox: Callable[..., Outbox]) -> None:
    """SPEC §13.6: upstream retried failures on every run, forever. Here: backoff, then `failed` after 3 tries."""
    ega_account("ega", gateway.url, 10)
    gateway.default = Reply(status=500, body=b"down")
    with time_machine.travel(T0, tick=False) as clock:
        outbox = make_outbox()
        delays = []
        for expected in ("pending", "pending", "failed"):
            started = timezone.now()
            assert deliver(outbox.pk) == expected
            outbox.refresh_from_db()
            if expected == "pending":
                assert deliver(outbox.pk) == "skipped", "not due before its backoff"
                delays.append((outbox.next_attempt_at - started).total_seconds())
                clock.move_to(outbox.next_attempt_at)
        assert outbox.status == Outbox.Status.FAILED
        assert outbox.attempts == 3
        assert "gave up after 3 attempts" in outbox.last_error
        clock.shift(dt.timedelta(days=30))
        assert outbox.pk not in swept()
        assert deliver(outbox.pk) == "skipped"
    assert len(gateway.received) == 3
    assert 30 <= delays[0] <= 60 and 60 <= delays[1] <= 120, delays


@pytest.mark.parametrize("reply", [Reply(delay=1.0), Reply(drop=True)], ids=["read-timeout", "dropped"])
def test_it_marks_an_unknown_outcome_and_never_resends_it(
    gateway: GatewayServer, second_gateway: GatewayServer, make_outbox: Callable[..., Outbox], reply: Reply
) -> None:
    ega_account("first", gateway.url, 10)
    ega_account("second", second_gateway.url, 20)
    gateway.queue(reply)
    outbox = make_outbox()
    assert deliver(outbox.pk) == "unknown"
    outbox.refresh_from_db()
    assert outbox.status == Outbox.Status.UNKNOWN
    assert second_gateway.received == [], "no fallback: the first gateway may have sent it"
    assert attempts(outbox) == [("first", Outcome.UNKNOWN, None)]
    with time_machine.travel(timezone.now() + dt.timedelta(days=1)):
        assert outbox.pk not in swept()
        assert deliver(outbox.pk) == "skipped"
    assert len(gateway.received) == 1


def test_it_skips_an_account_whose_breaker_is_open_then_probes_it(
    settings: Any, gateway: GatewayServer, second_gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "circuit_breaker": {"failure_threshold": 2, "window_seconds": 60, "cooldown_seconds": 30},
    }
    ega_account("first", gateway.url, 10)
    ega_account("second", second_gateway.url, 20)
    gateway.queue(Reply(status=500), Reply(status=500))
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(2):
            assert deliver(make_outbox().pk) == "sent"
        skipped = make_outbox()
        assert deliver(skipped.pk) == "sent"
        assert attempts(skipped) == [("second", Outcome.SUCCESS, None)], "a skip is counted, not an attempt row"
        assert len(gateway.received) == 2
        clock.shift(31)
        probed = make_outbox()
        assert deliver(probed.pk) == "sent"
        assert attempts(probed) == [("first", Outcome.SUCCESS, None)]
        assert coordination.breaker_state(ProviderAccount.objects.get(name="first").pk) == "closed"


def test_it_waits_for_the_breaker_without_spending_an_attempt(
    settings: Any, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "circuit_breaker": {"failure_threshold": 1, "window_seconds": 60, "cooldown_seconds": 30},
    }
    ega_account("ega", gateway.url, 10)
    gateway.queue(Reply(status=500))
    with time_machine.travel(T0, tick=False):
        first, second = make_outbox(), make_outbox()
        assert deliver(first.pk) == "pending"
        assert deliver(second.pk) == "pending"
        second.refresh_from_db()
    assert second.attempts == 0
    assert attempts(second) == []
    assert second.last_error == "ega: circuit breaker open"
    # Due again when the breaker's cooldown (30 s from T0) is over, not a whole cooldown later or at random.
    assert T0 + dt.timedelta(seconds=30) <= second.next_attempt_at <= T0 + dt.timedelta(seconds=32)
    assert len(gateway.received) == 1


def test_it_does_not_count_a_file_write_as_a_delivered_sms(
    tmp_path: Path, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    """SPEC §13.5: upstream "fell back" to writing a file and reported the SMS as delivered."""
    ega_account("ega", gateway.url, 10)
    text_account(tmp_path / "files", 20)
    gateway.queue(Reply(status=500), Reply(status=400, body=b'{"error": "rejected"}'))
    transient, permanent = make_outbox(), make_outbox()
    assert deliver(transient.pk) == "pending"
    assert deliver(permanent.pk) == "failed"
    assert not (tmp_path / "files").exists()
    assert [row[0] for row in attempts(transient) + attempts(permanent)] == ["ega", "ega"]
    assert not Outbox.objects.filter(status=Outbox.Status.SENT).exists()


def test_it_writes_files_when_only_the_text_provider_is_enabled(
    tmp_path: Path, make_outbox: Callable[..., Outbox]
) -> None:
    text_account(tmp_path / "files", 10)
    outbox = make_outbox(language="sw")
    assert deliver(outbox.pk) == "sent"
    outbox.refresh_from_db()
    written = tmp_path / "files" / f"outbox-{outbox.pk}.txt"
    assert outbox.provider_reference == str(written)
    content = written.read_text(encoding="utf-8")
    assert outbox.text in content and "language: sw" in content and "type: expiration_of_policy" in content


def test_it_keeps_an_audit_copy_of_what_a_gateway_delivered(
    tmp_path: Path, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("ega", gateway.url, 10)
    text_account(tmp_path / "files", 20)
    outbox = make_outbox()
    assert deliver(outbox.pk) == "sent"
    outbox.refresh_from_db()
    assert outbox.provider_account is not None and outbox.provider_account.name == "ega"
    assert attempts(outbox) == [("ega", Outcome.SUCCESS, None)]  # a file is no delivery attempt
    content = (tmp_path / "files" / f"outbox-{outbox.pk}.txt").read_text(encoding="utf-8")
    assert outbox.text in content and "delivered by: ega" in content
    assert len(gateway.received) == 1


def test_it_keeps_a_delivered_row_sent_when_its_audit_copy_cannot_be_written(
    tmp_path: Path, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    ega_account("ega", gateway.url, 10)
    text_account(blocker / "files", 20)
    outbox = make_outbox()
    assert deliver(outbox.pk) == "sent"
    outbox.refresh_from_db()
    assert outbox.status == Outbox.Status.SENT and outbox.last_error == ""
    assert attempts(outbox) == [("ega", Outcome.SUCCESS, None)]


def test_it_redacts_secrets_from_the_attempt_log(gateway: GatewayServer, make_outbox: Callable[..., Outbox]) -> None:
    ega_account("ega", gateway.url, 10, key="very-secret-key-123")
    gateway.queue(Reply(status=401, body=b'{"error": "bad signature for key very-secret-key-123"}'))
    outbox = make_outbox()
    assert deliver(outbox.pk) == "failed"
    attempt = DeliveryAttempt.objects.get(outbox=outbox)
    outbox.refresh_from_db()
    assert "very-secret-key-123" not in attempt.error + outbox.last_error
    assert "bad signature for key ***" in attempt.error


def test_it_fails_a_message_that_cannot_be_rendered(gateway: GatewayServer, make_outbox: Callable[..., Outbox]) -> None:
    ega_account("ega", gateway.url, 10)
    NotificationTemplate.objects.filter(notification_type="renewal_of_policy").delete()
    outbox = make_outbox(notification_type="renewal_of_policy")
    assert deliver(outbox.pk) == "failed"
    outbox.refresh_from_db()
    assert outbox.last_error.startswith("cannot render:")
    assert gateway.received == []


def test_it_seeds_provider_accounts_when_there_are_none(
    settings: Any, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "providers": {"eGASMSGateway": {**settings.NOTIFIER["providers"]["eGASMSGateway"], "GateUrl": gateway.url}},
    }
    outbox = make_outbox()
    assert deliver(outbox.pk) == "sent"
    assert list(ProviderAccount.objects.values_list("name", flat=True)) == ["eGASMSGateway", "TextNotificationProvider"]
    assert gateway.received[0].path == "/api/policy_notification/test_sms/"


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


def test_it_resends_a_failed_row_trying_a_provider_that_refused_it_before(
    gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("ega", gateway.url, 10)
    gateway.queue(Reply(status=400, body=b'{"error": "rejected"}'))
    outbox = make_outbox()
    assert deliver(outbox.pk) == "failed"
    assert resend([outbox.pk]) == 1
    outbox.refresh_from_db()
    assert (outbox.status, outbox.attempts, outbox.last_error) == (Outbox.Status.PENDING, 0, "")
    assert deliver(outbox.pk) == "sent"
    assert len(gateway.received) == 2


def test_it_cancels_only_rows_not_sent(gateway: GatewayServer, make_outbox: Callable[..., Outbox]) -> None:
    ega_account("ega", gateway.url, 10)
    sent, pending = make_outbox(), make_outbox()
    deliver(sent.pk)
    assert cancel([sent.pk, pending.pk]) == 1
    assert Outbox.objects.get(pk=sent.pk).status == Outbox.Status.SENT
    assert Outbox.objects.get(pk=pending.pk).status == Outbox.Status.CANCELLED
    assert deliver(pending.pk) == "skipped"
    assert resend([sent.pk]) == 0


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


def test_it_puts_a_row_back_to_pending_when_redis_is_unreachable_before_sending(
    settings: Any, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("ega", gateway.url, 10)
    outbox = make_outbox()
    working_redis = settings.REDIS_URL
    settings.REDIS_URL = closed_port_url().replace("http://", "redis://") + "/0"
    try:
        with pytest.raises(redis.ConnectionError):
            deliver(outbox.pk)
    finally:
        settings.REDIS_URL = working_redis
    outbox.refresh_from_db()
    assert (outbox.status, outbox.attempts) == (Outbox.Status.PENDING, 0)
    assert outbox.next_attempt_at > timezone.now()
    assert "crashed before sending" in outbox.last_error
    assert gateway.received == []


# --- the chunk path -----------------------------------------------------------------------------------------------

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


def test_it_reuses_one_connection_for_the_messages_of_a_chunk(
    gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    ega_account("ega", gateway.url, 10)
    rows = [make_outbox(recipient=f"+25571234560{n}") for n in range(3)]
    assert set(deliver_chunk([row.pk for row in rows]).values()) == {"sent"}
    assert len(gateway.received) == 3
    assert len({request.client for request in gateway.received}) == 1


@pytest.mark.parametrize("size", [5, 50])
def test_it_delivers_a_chunk_in_as_many_queries_whatever_its_size(
    settings: Any, size: int, gateway: GatewayServer, make_outbox: Callable[..., Outbox]
) -> None:
    """Claim, rows (policy, product, family, head), templates, texts, accounts, permanent failures, outcomes,
    attempts; and one send marker per message."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.NOTIFIER_DELIVERY_FLUSH_SECONDS = 3600  # outcomes written once, at the end of the chunk
    ega_account("ega", gateway.url, 10)
    languages = ["en", "sw", "fr", "fr-CA", "xx"]
    rows = [make_outbox(language=languages[n % 5], recipient=f"+2557123{n:05d}") for n in range(size)]
    with CaptureQueriesContext(connection) as queries:
        statuses = deliver_chunk([row.pk for row in rows])
    assert list(statuses.values()) == ["sent"] * size
    assert len(gateway.received) == size
    # Fixed per chunk, plus the one statement per message that marks its send as started before the provider call
    # (what lets the sweeper queue again, rather than give up on, what a killed worker never tried).
    assert len(queries) == 8 + size, [query["sql"][:80] for query in queries.captured_queries]
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
