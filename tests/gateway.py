"""The one fake SMS gateway of the tests: a real HTTP server on 127.0.0.1 (port 0) that records every request.

It answers by the request's path (the vendor paths are what a preset sends to with the server's URL as base):
- the Africa's Talking, Twilio and Infobip paths get that vendor's documented answer (success with a message id, an
  error for REFUSED_NUMBER, a refusal of a wrong key), written from the vendors' public documentation, independently
  of our providers;
- anything else (eGA, the general HTTP provider) gets `default`;
- a queued `Reply` comes first, whatever the path: a status, a body, a delay (a read timeout when longer than the
  client's), or a closed connection without an answer.
With `ega_key`, an eGA request whose X-Auth-Request-Hash does not verify with that key is refused with 401 first.
With `hold_first`, the first answered request waits until `release` is set (`holding` says it arrived), to stop a
worker in the middle of a send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EGA_KEY = "s3cr3t-key"  # the PrivateKey of tests.factories.ega_account
AT_USERNAME = "sandbox"
AT_KEY = "at-key-0123456789"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-token-abcdef"
TWILIO_FROM = "+15005550006"
INFOBIP_KEY = "ib-key-0123456789"
REFUSED_NUMBER = "+255700000001"  # every vendor refuses this recipient with its own error answer

VENDOR_PATHS = {
    "/version1/messaging": "africastalking",
    f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json": "twilio",
    "/sms/2/text/advanced": "infobip",
}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b'{"success": true}'
    delay: float = 0.0  # seconds before answering (a read timeout when longer than the client's)
    drop: bool = False  # read the request, then close the connection without an answer
    content_type: str = "application/json"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    client: tuple[str, int] = ("", 0)  # the client's address: one per connection
    refused: bool = False  # an eGA request whose signature did not verify (answered 401)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def vendor(self) -> str:
        return VENDOR_PATHS.get(urlsplit(self.path).path, "")

    @cached_property
    def form(self) -> dict[str, str]:
        if not (self.header("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return {}
        return {key: values[0] for key, values in parse_qs(self.body.decode("ascii")).items()}

    @cached_property
    def json(self) -> Any:
        if self.form or not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def ega_message(self) -> tuple[str, str] | None:
        """(recipients, message) of an eGA request, None for another kind."""
        if not isinstance(self.json, dict) or not isinstance(self.json.get("data"), str):
            return None
        payload = json.loads(self.json["data"])
        return payload["recipients"], payload["message"]


@dataclass
class GatewayServer:
    default: Reply = field(default_factory=Reply)
    ega_key: str | None = None
    hold_first: bool = False
    received: list[Received] = field(default_factory=list)
    replies: deque[Reply] = field(default_factory=deque)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)  # notified on each request

    def __post_init__(self) -> None:
        gateway = self
        ids = itertools.count(1)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body on keep-alive

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received(self.command, self.path, list(self.headers.items()), body, self.client_address[:2])
                vendor = request.vendor
                if not vendor and gateway.ega_key is not None and not _ega_signed(request, gateway.ega_key):
                    request = replace(request, refused=True)
                with gateway.arrived:
                    gateway.received.append(request)
                    gateway.arrived.notify_all()
                    number = next(ids)
                    queued = gateway.replies.popleft() if gateway.replies and not request.refused else None
                    hold = gateway.hold_first and not request.refused and not gateway.holding.is_set()
                    if hold:
                        gateway.holding.set()
                if hold:
                    gateway.release.wait(timeout=60)
                if request.refused:
                    reply = Reply(status=401, body=b'{"error": "bad hash"}')
                elif queued is not None:
                    reply = queued
                elif vendor:
                    reply = _VENDORS[vendor](request, number)
                else:
                    reply = gateway.default
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    self.close_connection = True  # the client gave up waiting

            do_GET = do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def wait_for_requests(self, count: int, timeout: float = 30) -> bool:
        """Block until `count` requests have arrived (answered or not yet); False after `timeout` seconds."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)

    def counts(self) -> Counter[tuple[str, str]]:
        """How often each (recipients, message) reached the gateway in an eGA request it accepted."""
        messages = (request.ega_message() for request in list(self.received) if not request.refused)
        return Counter(message for message in messages if message is not None)

    @property
    def bad_signatures(self) -> int:
        return sum(request.refused for request in list(self.received))

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL nobody listens on: bind a port, then release it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _ega_signed(request: Received, key: str) -> bool:
    data = request.json.get("data") if isinstance(request.json, dict) else None
    if not isinstance(data, str):
        return False
    expected = base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha256).digest()).decode()
    return hmac.compare_digest(request.header("X-Auth-Request-Hash") or "", expected)


def _json(status: int, value: Any) -> Reply:
    return Reply(status=status, body=json.dumps(value).encode())


def _text(status: int, text: bytes) -> Reply:
    return Reply(status=status, body=text, content_type="text/plain")


def _africastalking(request: Received, number: int) -> Reply:
    form = request.form
    if request.header("apiKey") != AT_KEY or form.get("username") != AT_USERNAME:
        return _text(401, b"The supplied authentication is invalid")
    if not form.get("to") or not form.get("message"):
        return _text(400, b"Request is missing required form field 'to'")
    if form["to"] == REFUSED_NUMBER:
        recipient = {"statusCode": 403, "number": form["to"], "status": "InvalidPhoneNumber", "cost": "0"}
        return _json(201, {"SMSMessageData": {"Message": "Sent to 0/1 Total Cost: 0", "Recipients": [recipient]}})
    recipient = {
        "statusCode": 101,
        "number": form["to"],
        "status": "Success",
        "cost": "TZS 20.0000",
        "messageId": f"ATXid_{number:08d}",
    }
    return _json(201, {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: TZS 20.0000", "Recipients": [recipient]}})


def _twilio(request: Received, number: int) -> Reply:
    form = request.form
    expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    if request.header("Authorization") != expected:
        return _json(401, {"code": 20003, "message": "Authenticate", "more_info": "", "status": 401})
    if form.get("To") == REFUSED_NUMBER:
        message = f"The 'To' number {form['To']} is not a valid phone number."
        return _json(400, {"code": 21211, "message": message, "more_info": "", "status": 400})
    if not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
        return _json(400, {"code": 21604, "message": "A 'From' phone number is required.", "status": 400})
    sent = {"sid": f"SM{number:032x}", "account_sid": TWILIO_SID, "to": form["To"], "from": form.get("From")}
    return _json(201, {**sent, "body": form["Body"], "status": "queued", "error_code": None})


def _infobip(request: Received, _number: int) -> Reply:
    if request.header("Authorization") != f"App {INFOBIP_KEY}":
        error = {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}}
        return _json(401, {"requestError": error})
    try:
        message = request.json["messages"][0]
        destination = message["destinations"][0]
        assert message["text"]
    except (KeyError, IndexError, TypeError, AssertionError):
        error = {"serviceException": {"messageId": "BAD_REQUEST", "text": "Bad request"}}
        return _json(400, {"requestError": error})
    if destination["to"] == REFUSED_NUMBER.lstrip("+"):
        status: dict[str, Any] = {"groupId": 5, "groupName": "REJECTED", "id": 51, "name": "MISSING_TO"}
        status["description"] = "Missing destination."
    else:
        status = {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED"}
        status["description"] = "Message sent to next instance"
    answer = {"to": destination["to"], "status": status, "messageId": destination.get("messageId", "")}
    return _json(200, {"bulkId": "bulk-1", "messages": [answer]})


_VENDORS = {"africastalking": _africastalking, "twilio": _twilio, "infobip": _infobip}
