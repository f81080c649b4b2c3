"""A fake eGA gateway on 127.0.0.1 (port 0) that checks each request's hash, and an account pointing at it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notifier.models import ProviderAccount

KEY = "e2e-private-key"


class FakeEGAGateway:
    """Answers eGA requests whose hash verifies; can hold the first request until released (to kill mid-send)."""

    def __init__(self, hold_first: bool = False) -> None:
        self.received: list[tuple[str, str]] = []
        self.bad_signatures = 0
        self.hold_first = hold_first
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                data = body["data"]
                expected = base64.b64encode(hmac.new(KEY.encode(), data.encode(), hashlib.sha256).digest()).decode()
                if not hmac.compare_digest(self.headers.get("X-Auth-Request-Hash", ""), expected):
                    with gateway._lock:
                        gateway.bad_signatures += 1
                    self._answer(401, {"error": "bad hash"})
                    return
                payload = json.loads(data)
                with gateway._lock:
                    gateway.received.append((payload["recipients"], payload["message"]))
                    hold = gateway.hold_first and not gateway.holding.is_set()
                    if hold:
                        gateway.holding.set()
                if hold:
                    gateway.release.wait(timeout=60)
                self._answer(200, {"success": True})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                try:
                    raw = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the worker that asked is gone

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def counts(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def ega_account(gateway: FakeEGAGateway) -> ProviderAccount:
    return ProviderAccount.objects.create(
        name="e2e eGA",
        provider="eGASMSGateway",
        priority=10,
        config={
            "GateUrl": gateway.url,
            "SmsResource": "/sms",
            "PrivateKey": KEY,
            "UserId": "e2e-user",
            "SenderId": "CHF",
            "ServiceId": "42",
            "RequestType": "api",
        },
    )
