"""notifier.delivery.operator: an operator resends a failed row and cancels the rows not sent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from notifier.delivery.operator import cancel, resend
from notifier.delivery.runner import deliver
from notifier.models import Outbox
from tests.factories import ega_account
from tests.gateway import GatewayServer, Reply

pytestmark = pytest.mark.usefixtures("quick_delivery_settings")


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
