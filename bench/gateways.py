"""The fake SMS gateways of the delivery benches, on 127.0.0.1 (port 0), recording what they receive.

`EgaGateway` (bench/deliver.py) speaks eGA and checks each request's HMAC; `JsonGateway` (bench/chaos.py) takes
plain JSON and lets each scenario decide how it treats the n-th request. Both answer HTTP/1.1 with keep-alive and
TCP_NODELAY through `JsonAnswers`, as production web servers do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GATEWAY_KEY = "bench-private-key"


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


class EgaGateway:
    """An eGA-speaking SMS gateway on 127.0.0.1:<free port> that records what it receives (thread-safe)."""

    def __init__(self, private_key: str = GATEWAY_KEY) -> None:
        self.private_key = private_key.encode("utf-8")
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, float]] = []  # (recipients, message, time.time())
        self.rejected = 0
        gateway = self

        class Handler(JsonAnswers):
            def do_POST(self) -> None:
                arrived = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    envelope = json.loads(body)
                    data = envelope["data"]
                    payload = json.loads(data)
                    expected = base64.b64encode(
                        hmac.new(gateway.private_key, data.encode("utf-8"), hashlib.sha256).digest()
                    ).decode("ascii")
                    valid = hmac.compare_digest(self.headers.get("X-Auth-Request-Hash", ""), expected)
                except (ValueError, KeyError, TypeError):
                    valid, payload = False, {}
                if not valid:
                    with gateway.lock:
                        gateway.rejected += 1
                    self.answer(401, b'{"error":"request hash does not verify"}')
                    return
                with gateway.lock:
                    gateway.received.append((str(payload.get("recipients")), str(payload.get("message")), arrived))
                self.answer(200, b'{"success":true,"error":false}')

        self.server = loopback_server(Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-ega", daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def __enter__(self) -> EgaGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


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
