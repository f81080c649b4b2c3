"""Local fakes of Africa's Talking, Twilio and Infobip (a real HTTP server on 127.0.0.1, port 0).

Each speaks its vendor's documented protocol as far as our provider uses it: the request path and shape, the
authentication, a success answer carrying a message id, an error answer for a number it refuses, and the answer
to a wrong key. Replies are written here from the vendors' public documentation, independently of our code.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

AT_USERNAME = "sandbox"
AT_KEY = "at-key-0123456789"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-token-abcdef"
TWILIO_FROM = "+15005550006"
INFOBIP_KEY = "ib-key-0123456789"
REFUSED_NUMBER = "+255700000001"  # every fake refuses this recipient with its own error answer


@dataclass(frozen=True)
class Seen:
    vendor: str
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    json: Any


@dataclass
class FakeGateways:
    received: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        fakes = self
        ids = itertools.count(1)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                form: dict[str, str] = {}
                body: Any = None
                if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                    form = {key: values[0] for key, values in parse_qs(raw.decode("ascii")).items()}
                elif raw:
                    body = json.loads(raw)
                path = urlsplit(self.path).path
                number = next(ids)
                if path == "/version1/messaging":
                    vendor, reply = "africastalking", _africastalking(headers, form, number)
                elif path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
                    vendor, reply = "twilio", _twilio(headers, form, number)
                elif path == "/sms/2/text/advanced":
                    vendor, reply = "infobip", _infobip(headers, body)
                else:
                    vendor, reply = "unknown", (404, "text/plain", b"not found")
                fakes.received.append(Seen(vendor, self.command, self.path, headers, form, body))
                status, content_type, payload = reply
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _json(status: int, value: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(value).encode()


def _africastalking(headers: dict[str, str], form: dict[str, str], number: int) -> tuple[int, str, bytes]:
    if headers.get("apikey") != AT_KEY or form.get("username") != AT_USERNAME:
        return 401, "text/plain", b"The supplied authentication is invalid"
    if not form.get("to") or not form.get("message"):
        return 400, "text/plain", b"Request is missing required form field 'to'"
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


def _twilio(headers: dict[str, str], form: dict[str, str], number: int) -> tuple[int, str, bytes]:
    expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    if headers.get("authorization") != expected:
        return _json(401, {"code": 20003, "message": "Authenticate", "more_info": "", "status": 401})
    if form.get("To") == REFUSED_NUMBER:
        message = f"The 'To' number {form['To']} is not a valid phone number."
        return _json(400, {"code": 21211, "message": message, "more_info": "", "status": 400})
    if not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
        return _json(400, {"code": 21604, "message": "A 'From' phone number is required.", "status": 400})
    return _json(
        201,
        {
            "sid": f"SM{number:032x}",
            "account_sid": TWILIO_SID,
            "to": form["To"],
            "from": form.get("From"),
            "body": form["Body"],
            "status": "queued",
            "error_code": None,
        },
    )


def _infobip(headers: dict[str, str], body: Any) -> tuple[int, str, bytes]:
    if headers.get("authorization") != f"App {INFOBIP_KEY}":
        error = {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}}
        return _json(401, {"requestError": error})
    try:
        message = body["messages"][0]
        destination = message["destinations"][0]
        text = message["text"]
    except (KeyError, IndexError, TypeError):
        error = {"serviceException": {"messageId": "BAD_REQUEST", "text": "Bad request"}}
        return _json(400, {"requestError": error})
    if destination["to"] == REFUSED_NUMBER.lstrip("+"):
        status = {
            "groupId": 5,
            "groupName": "REJECTED",
            "id": 51,
            "name": "MISSING_TO",
            "description": "Missing destination.",
        }
    else:
        status = {
            "groupId": 1,
            "groupName": "PENDING",
            "id": 26,
            "name": "PENDING_ACCEPTED",
            "description": "Message sent to next instance",
        }
    assert text
    return _json(
        200,
        {
            "bulkId": "bulk-1",
            "messages": [{"to": destination["to"], "status": status, "messageId": destination.get("messageId", "")}],
        },
    )
