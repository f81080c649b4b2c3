"""The tests' fake gateway (tests/gateway.py) holds what other tests rely on: it refuses a wrongly signed eGA request,
counts only the accepted ones, plays queued replies before the vendor answers, and holds the first call on demand."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from notifier.providers.base import PermanentError, ProviderError, Timeouts
from notifier.providers.ega import EGASMSGateway
from notifier.providers.http_generic import AfricasTalkingProvider
from tests.factories import ega_config
from tests.gateway import AT_KEY, AT_USERNAME, EGA_KEY, GatewayServer, Reply

QUICK = Timeouts(connect=0.5, read=2.0)


@pytest.fixture
def signed() -> Iterator[GatewayServer]:
    server = GatewayServer(ega_key=EGA_KEY)
    yield server
    server.stop()


def ega(url: str, key: str = EGA_KEY) -> EGASMSGateway:
    return EGASMSGateway(EGASMSGateway.parse_config(ega_config(url, PrivateKey=key)), QUICK)


def test_it_refuses_an_ega_request_signed_with_another_key_and_counts_only_the_accepted(
    signed: GatewayServer,
) -> None:
    ega(signed.url).send("+255712345678", "Habari", "outbox-1")
    with pytest.raises(ProviderError, match="401"):
        ega(signed.url, key="a-guessed-key").send("+255712345678", "Hujambo", "outbox-2")

    assert len(signed.received) == 2
    assert signed.bad_signatures == 1
    assert signed.counts() == Counter({("255712345678", "Habari"): 1})


def test_a_queued_reply_comes_before_the_vendor_answer(gateway: GatewayServer) -> None:
    provider = AfricasTalkingProvider(
        AfricasTalkingProvider.parse_config({"username": AT_USERNAME, "api_key": AT_KEY, "base_url": gateway.url}),
        QUICK,
    )
    gateway.queue(Reply(status=400, body=b"refused by the test", content_type="text/plain"))
    with pytest.raises(PermanentError):
        provider.send("+255712345678", "Hello", "outbox-3")
    assert provider.send("+255712345678", "Hello", "outbox-4").startswith("ATXid_")
    assert [request.vendor for request in gateway.received] == ["africastalking", "africastalking"]


def test_it_holds_the_first_accepted_call_until_released() -> None:
    server = GatewayServer(ega_key=EGA_KEY, hold_first=True)
    outcome: list[str] = []
    sender = threading.Thread(target=lambda: outcome.append(ega(server.url).send("+255712345678", "Held", "o-5")))
    try:
        sender.start()
        assert server.holding.wait(timeout=10)
        assert server.wait_for_requests(1, timeout=10)
        assert outcome == []  # still waiting for its answer
        server.release.set()
        sender.join(timeout=10)
        assert outcome == ["o-5"]
    finally:
        server.stop()
        sender.join(timeout=10)
