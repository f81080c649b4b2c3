"""notifier.providers.one_write: a provider's HTTP request leaves in one write, head and body together."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from notifier.providers.base import PooledSession, Timeouts

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class FirstReads:
    """A keep-alive HTTP server on 127.0.0.1:0 that answers every request and notes what its first read of each
    request returned (a request sent in two writes is usually seen in two reads: the head alone first)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.first_reads: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/send"

    def _serve(self) -> None:
        connection, _address = self.listener.accept()
        with connection:
            while True:
                first = connection.recv(65536)
                if not first:
                    return
                self.first_reads.append(first)
                request = first
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(
                    next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(
                        b":"
                    )[1]
                )
                while len(body) < length:
                    body += connection.recv(65536)
                connection.sendall(ANSWER)


@pytest.fixture
def server() -> Iterator[FirstReads]:
    found = FirstReads()
    yield found
    found.listener.close()


def test_it_sends_head_and_body_in_one_write_on_new_and_kept_alive_connections(server: FirstReads) -> None:
    session = PooledSession()
    bodies = [b'{"to": "+255712345678", "text": "%d"}' % index for index in range(20)]
    for body in bodies:
        answer = session.request(
            "POST", server.url, body=body, headers={"Content-Type": "application/json"}, timeouts=Timeouts(2, 2)
        )
        assert answer.status_code == 200
    session.close()
    assert len(server.first_reads) == 20, "one connection, kept alive"
    for body, first in zip(bodies, server.first_reads, strict=True):
        assert first.startswith(b"POST /send HTTP/1.1\r\n")
        assert first.endswith(b"\r\n\r\n" + body), "the body arrived with the head"
