"""The fake SMS gateways of the delivery benches, on 127.0.0.1 (port 0), recording what they receive.

`EgaGateway` (bench/deliver.py) speaks eGA and checks each request's HMAC. It runs beside the workers and its CPU
counts against the machine, so it serves every connection from one background thread, a selector over non-blocking
sockets: HTTP/1.1 with keep-alive and pipelining, bodies framed by Content-Length, TCP_NODELAY, about a third of the
CPU per request of a thread per connection with the stdlib's header parsing. `JsonGateway` (bench/chaos.py) takes
plain JSON and lets each scenario decide how it treats the n-th request (a delay holds that request's own thread):
a stdlib ThreadingHTTPServer answering through `JsonAnswers`. Both keep connections alive and set TCP_NODELAY, as
production web servers do.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GATEWAY_KEY = "bench-private-key"
MAX_HEAD = 64 * 1024  # bytes of request line and headers
MAX_BODY = 1024 * 1024
OK = b'{"success":true,"error":false}'


class JsonAnswers(BaseHTTPRequestHandler):
    """A request handler that answers JSON over kept-alive connections and logs nothing."""

    protocol_version = "HTTP/1.1"  # keep-alive: a worker sends a chunk over one connection
    # Headers and body leave in two writes: without TCP_NODELAY the body waits for the client's delayed
    # ACK (40 ms) on a kept-alive connection. Production web servers set it too (nginx tcp_nodelay).
    disable_nagle_algorithm = True

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def loopback_server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threading server on 127.0.0.1, a free port, whose request threads do not hold the process up."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server


class _Refused(Exception):
    """A request the gateway cannot frame: answered with `status`, then the connection closes."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    inbox: bytearray = field(default_factory=bytearray)  # bytes read, not yet taken as requests
    outbox: bytearray = field(default_factory=bytearray)  # answers not yet sent
    closing: bool = False  # close once the outbox is sent


def _take_request(inbox: bytearray) -> tuple[bytes, dict[bytes, bytes], bytes, bool] | None:
    """The first whole request of `inbox`, removed from it: (method, headers by lower-case name, body, keep-alive);
    None while it is incomplete. Raises _Refused for a request that cannot be framed."""
    end = inbox.find(b"\r\n\r\n")
    if end < 0:
        if len(inbox) > MAX_HEAD:
            raise _Refused(431)
        return None
    request_line, *lines = bytes(inbox[:end]).split(b"\r\n")
    parts = request_line.split(b" ")  # method, target (any: the gateway has one resource), version
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise _Refused(400)
    method, version = parts[0], parts[2]
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise _Refused(400)
        headers[name.strip().lower()] = value.strip()
    length = headers.get(b"content-length", b"" if method == b"POST" else b"0")
    if not length or b"transfer-encoding" in headers:
        raise _Refused(411)  # the body is framed by Content-Length only (no chunked uploads)
    if not length.isdigit():
        raise _Refused(400)
    if int(length) > MAX_BODY:
        raise _Refused(413)
    start = end + 4
    stop = start + int(length)
    if len(inbox) < stop:
        return None
    body = bytes(inbox[start:stop])
    del inbox[:stop]
    options = {token.strip() for token in headers.get(b"connection", b"").lower().split(b",")}
    keep_alive = b"close" not in options if version == b"HTTP/1.1" else b"keep-alive" in options
    return method, headers, body, keep_alive


@functools.cache
def _response(status: int, body: bytes, close: bool) -> bytes:
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n\r\n" if close else "\r\n")
    return head.encode("ascii") + body


class EgaGateway:
    """An eGA-speaking SMS gateway on 127.0.0.1:<free port> that records what it receives (thread-safe), served by
    one background thread over non-blocking sockets."""

    def __init__(self, private_key: str = GATEWAY_KEY) -> None:
        self.private_key = private_key.encode("utf-8")
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, float]] = []  # (recipients, message, time.time())
        self.rejected = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self._stop_read, self._stop = socket.socketpair()  # a byte on it ends the loop
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self._stop_read, selectors.EVENT_READ)
        self.connections: set[_Connection] = set()
        self.thread = threading.Thread(target=self._serve, name="fake-ega", daemon=True)

    @property
    def url(self) -> str:
        port = self.listener.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def __enter__(self) -> EgaGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):  # the loop may have ended already
            self._stop.send(b"x")
        self.thread.join(timeout=5)
        self._stop.close()

    def _serve(self) -> None:
        try:
            while True:
                for key, events in self.selector.select():
                    if key.fileobj is self.listener:
                        self._accept()
                    elif key.fileobj is self._stop_read:
                        return
                    elif events & selectors.EVENT_WRITE:
                        self._flush(key.data, reading=False)
                    else:
                        self._read(key.data)
        finally:
            for connection in list(self.connections):
                self._close(connection)
            self.selector.close()
            self.listener.close()
            self._stop_read.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _address = self.listener.accept()
            except OSError:  # none left (BlockingIOError), or the client went away already
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(sock)
            self.connections.add(connection)
            self.selector.register(sock, selectors.EVENT_READ, connection)

    def _read(self, connection: _Connection) -> None:
        try:
            chunk = connection.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # EOF (or reset): an unfinished request is dropped with the connection
            self._close(connection)
            return
        arrived = time.time()
        connection.inbox += chunk
        while connection.inbox and not connection.closing:  # every whole request read so far, pipelined ones too
            try:
                request = _take_request(connection.inbox)
            except _Refused as refused:
                error = json.dumps({"error": HTTPStatus(refused.status).phrase}).encode("ascii")
                connection.outbox += _response(refused.status, error, True)
                connection.closing = True
                break
            if request is None:
                break
            method, headers, body, keep_alive = request
            if method == b"POST":
                status, answer = self._answer(headers, body, arrived)
            else:
                status, answer, keep_alive = 405, b'{"error":"method not allowed"}', False
            connection.outbox += _response(status, answer, not keep_alive)
            connection.closing = not keep_alive
        if connection.outbox or connection.closing:
            self._flush(connection, reading=True)

    def _answer(self, headers: dict[bytes, bytes], body: bytes, arrived: float) -> tuple[int, bytes]:
        try:
            envelope = json.loads(body)
            data = envelope["data"]
            payload = json.loads(data)
            expected = base64.b64encode(hmac.new(self.private_key, data.encode("utf-8"), hashlib.sha256).digest())
            valid = hmac.compare_digest(headers.get(b"x-auth-request-hash", b""), expected)
        except (ValueError, KeyError, TypeError):
            valid, payload = False, {}
        if not valid or not isinstance(payload, dict):  # a signed payload that is not an object: refused too
            with self.lock:
                self.rejected += 1
            return 401, b'{"error":"request hash does not verify"}'
        with self.lock:
            self.received.append((str(payload.get("recipients")), str(payload.get("message")), arrived))
        return 200, OK

    def _flush(self, connection: _Connection, reading: bool) -> None:
        """Send what the outbox holds; what the socket does not take waits for it to be writable, reading nothing
        meanwhile (`reading`: the connection is registered for reading, not writing)."""
        try:
            del connection.outbox[: connection.sock.send(connection.outbox)]
        except BlockingIOError:
            pass
        except OSError:
            connection.outbox.clear()
            connection.closing = True
        if connection.outbox:
            if reading:
                self.selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
        elif connection.closing:
            self._close(connection)
        elif not reading:
            self.selector.modify(connection.sock, selectors.EVENT_READ, connection)

    def _close(self, connection: _Connection) -> None:
        self.selector.unregister(connection.sock)
        # Bytes left unread would make close() reset the connection, which can drop the last answer in flight.
        with contextlib.suppress(OSError):
            while connection.sock.recv(65536):
                pass
        connection.sock.close()
        self.connections.discard(connection)


@dataclass
class JsonGateway:
    """A JSON SMS gateway on 127.0.0.1:<port 0>; `behave(n)` decides how it treats the n-th request."""

    received: list[tuple[str, str, float]] = field(default_factory=list)  # (to, text, when)
    requests: int = 0  # every request, answered 200 or not
    behave: Callable[[int], tuple[int, float]] = lambda _n: (200, 0.0)  # (status, seconds before answering)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        gateway = self

        class Handler(JsonAnswers):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with gateway.lock:
                    status, delay = gateway.behave(gateway.requests)
                    gateway.requests += 1
                    if status == 200:  # what a gateway accepted (a hung request counts: it may have gone out)
                        gateway.received.append((str(body["to"]), str(body["text"]), time.time()))
                if delay:
                    time.sleep(delay)
                payload = b'{"ok": true}' if status == 200 else b'{"error": "busy"}'
                with contextlib.suppress(OSError):
                    self.answer(status, payload)

        self.server = loopback_server(Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/send"

    def reset(self, behave: Callable[[int], tuple[int, float]] | None = None) -> None:
        with self.lock:
            self.received = []
            self.requests = 0
            self.behave = behave or (lambda _n: (200, 0.0))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
