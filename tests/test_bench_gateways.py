"""The delivery bench's fake eGA gateway (bench/gateways.py) speaks HTTP/1.1 as a client expects: keep-alive,
pipelining, requests split over reads, Connection: close, bodies framed by Content-Length, many connections."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bench.gateways import GATEWAY_KEY, EgaGateway

OK = b'{"success":true,"error":false}'


@pytest.fixture
def gateway() -> Iterator[EgaGateway]:
    with EgaGateway() as served:
        yield served


def envelope(recipient: str, message: str = "Renew your policy", key: str = GATEWAY_KEY) -> tuple[bytes, str]:
    """An eGA request body and its X-Auth-Request-Hash, built as the eGA provider builds them."""
    sent_at = "2026-11-28 10:00:00"
    fields = {"message": message, "datetime": sent_at, "sender_id": "CHF", "mobile_service_id": "7"}
    data = json.dumps({**fields, "recipients": recipient}, separators=(",", ":"))
    signature = base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha256).digest()).decode()
    return json.dumps({"data": data, "datetime": sent_at}, separators=(",", ":")).encode(), signature


def raw_request(recipient: str, *, extra: str = "", key: str = GATEWAY_KEY) -> bytes:
    body, signature = envelope(recipient, key=key)
    head = (
        f"POST /api/policy_notification/test_sms/ HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\n"
        f"x-auth-request-hash: {signature}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def connect(gateway: EgaGateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])), timeout=5)


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`count` answers off a raw socket: (status, headers by lower-case name, body)."""
    buffer = b""
    answers: list[tuple[int, dict[str, str], bytes]] = []
    while len(answers) < count:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            status_line, *lines = buffer[:end].decode().split("\r\n")
            headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
            stop = end + 4 + int(headers["content-length"])
            if len(buffer) >= stop:
                answers.append((int(status_line.split()[1]), headers, buffer[end + 4 : stop]))
                buffer = buffer[stop:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(answers)} answers"
        buffer += chunk
    assert not buffer
    return answers


def test_it_answers_and_records_many_requests_over_one_kept_alive_connection(gateway: EgaGateway) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]), timeout=5)
    before = time.time()
    for n in range(50):
        body, signature = envelope(f"2557{n:08d}", message=f"message {n}")
        headers = {"Content-Type": "application/json", "X-Auth-Request-Hash": signature}
        connection.request("POST", "/api/policy_notification/test_sms/", body=body, headers=headers)
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (200, OK)
        assert answer.getheader("Content-Type") == "application/json"
        assert answer.getheader("Content-Length") == str(len(OK))
        assert answer.getheader("Connection") is None
    connection.close()

    assert gateway.count() == 50 and gateway.rejected == 0
    assert [(to, text) for to, text, _ in gateway.received] == [(f"2557{n:08d}", f"message {n}") for n in range(50)]
    assert all(before <= when <= time.time() for _, _, when in gateway.received)


def test_it_refuses_a_request_whose_hash_does_not_verify_and_keeps_the_connection(gateway: EgaGateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(raw_request("255700000001", key="another-key") + raw_request("255700000002"))
        (status, headers, body), second = read_answers(sock, 2)

    assert status == 401 and headers["content-type"] == "application/json" and "error" in json.loads(body)
    assert second[0] == 200
    assert gateway.rejected == 1 and [to for to, _, _ in gateway.received] == ["255700000002"]


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"datetime":"x"}', b'{"data":42}', b'{"data":"not json"}', b"[1]"],
    ids=["no JSON", "no data", "data not a string", "data not JSON", "not an object"],
)
def test_it_refuses_a_malformed_envelope(gateway: EgaGateway, body: bytes) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nX-Auth-Request-Hash: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        [(status, _, _)] = read_answers(sock, 1)

    assert status == 401 and gateway.rejected == 1 and gateway.count() == 0


def test_it_answers_pipelined_requests_and_requests_split_over_reads(gateway: EgaGateway) -> None:
    pipelined = b"".join(raw_request(f"25570000000{n}") for n in range(3))
    split = raw_request("255700000009")
    with connect(gateway) as sock:
        sock.sendall(pipelined + split[:10])  # three requests and the start of a fourth in one write
        assert [status for status, _, _ in read_answers(sock, 3)] == [200, 200, 200]
        for start in range(10, len(split), 7):  # the rest in small pieces, each read by itself
            time.sleep(0.002)
            sock.sendall(split[start : start + 7])
        assert [status for status, _, _ in read_answers(sock, 1)] == [200]

    assert [to for to, _, _ in gateway.received] == [f"25570000000{n}" for n in (0, 1, 2, 9)]


def test_it_closes_after_an_answer_to_connection_close(gateway: EgaGateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(raw_request("255700000001", extra="Connection: close\r\n") + raw_request("255700000002"))
        [(status, headers, _)] = read_answers(sock, 1)
        assert sock.recv(1024) == b""  # the request after it is never read

    assert status == 200 and headers["connection"] == "close"
    assert [to for to, _, _ in gateway.received] == ["255700000001"]


@pytest.mark.parametrize(
    ("request_head", "expected"),
    [
        (b"POST / HTTP/1.1\r\nX-Auth-Request-Hash: x\r\n\r\n{}", 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nContent-Length: -2\r\n\r\n{}", 400),
        (b"POST /\r\nContent-Length: 2\r\n\r\n{}", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 405),
    ],
    ids=["no length", "chunked", "bad length", "no version", "GET"],
)
def test_it_answers_an_unframed_or_unknown_request_and_closes(
    gateway: EgaGateway, request_head: bytes, expected: int
) -> None:
    with connect(gateway) as sock:
        sock.sendall(request_head)
        [(status, headers, body)] = read_answers(sock, 1)
        assert sock.recv(1024) == b""

    assert (status, headers["connection"]) == (expected, "close") and "error" in json.loads(body)
    assert gateway.count() == 0


def test_it_serves_many_connections_at_once_and_closes_them_on_exit() -> None:
    with EgaGateway() as gateway:
        socks = [connect(gateway) for _ in range(12)]
        requests = [raw_request(f"2557000000{n:02d}") for n in range(12)]
        for sock, request in zip(socks, requests, strict=True):  # every connection holds half a request...
            sock.sendall(request[:40])
        for sock, request in reversed(list(zip(socks, requests, strict=True))):  # ...finished in reverse order
            sock.sendall(request[40:])
            assert read_answers(sock, 1)[0][0] == 200
        socks[0].close()  # a client that goes away: its connection closes, the others go on
        socks[1].sendall(raw_request("255700000099"))
        assert read_answers(socks[1], 1)[0][0] == 200
        assert gateway.count() == 13

    for sock in socks[1:]:
        assert sock.recv(1024) == b""  # closed by the gateway on exit
        sock.close()
    with pytest.raises(OSError):
        connect(gateway)


def test_it_holds_answers_a_slow_reader_has_no_room_for_and_reads_on_once_they_are_sent(gateway: EgaGateway) -> None:
    requests = b"".join(raw_request(f"2557{n:08d}") for n in range(400))
    with connect(gateway) as sock:
        sock.sendall(raw_request("255700000000"))
        read_answers(sock, 1)
        [connection] = gateway.connections  # small buffers on both ends: the answers cannot all leave at once
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sender = threading.Thread(target=sock.sendall, args=(requests,))
        sender.start()
        time.sleep(0.3)  # nothing read meanwhile
        answers = read_answers(sock, 400)
        sender.join()

    assert {status for status, _, _ in answers} == {200} and gateway.count() == 401
