"""urllib3 connection pools whose requests leave in one write."""

from __future__ import annotations

from typing import Any

import urllib3
import urllib3.connection


class _OneWriteConnection(urllib3.connection.HTTPConnection):
    """Sends a request's head and body in one write (urllib3 sends them in two: two system calls and two wake-ups
    of the gateway, and on a kept-alive connection a server without TCP_NODELAY holds the body for the client's
    delayed ACK)."""

    _held: list[bytes] | None = None

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **options: Any) -> None:
        self._held = []
        try:
            super().request(method, url, body=body, headers=headers, **options)
            data = b"".join(self._held)
        finally:
            self._held = None
        super().send(data)  # connects first when the connection is new, as the first write would

    def send(self, data: Any) -> None:
        if self._held is not None and isinstance(data, bytes):
            self._held.append(data)
            return
        if self._held:  # anything but bytes (a file, an iterable) goes out after what was held, in order
            held, self._held = b"".join(self._held), []
            super().send(held)
        super().send(data)


class _OneWriteTLSConnection(_OneWriteConnection, urllib3.connection.HTTPSConnection):
    pass


class _OneWritePool(urllib3.HTTPConnectionPool):
    ConnectionCls = _OneWriteConnection


class _OneWriteTLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _OneWriteTLSConnection


ONE_WRITE_POOLS = {"http": _OneWritePool, "https": _OneWriteTLSPool}
