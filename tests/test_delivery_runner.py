"""deliver(): claim, render, ordered fallback, retries, breaker, unknown outcomes, attempt log — real HTTP servers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from django.utils import timezone

from notifier import coordination
from notifier.delivery.runner import deliver
from notifier.models import DeliveryAttempt, NotificationTemplate, Outbox, ProviderAccount
from tests.delivery_helpers import T0, Outcome, attempts, swept, text_account
from tests.factories import ega_account
from tests.gateway import GatewayServer, Reply, closed_port_url

pytestmark = pytest.mark.usefixtures("quick_delivery_settings")


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
