"""notifier.providers.http_client through PooledSession and http_request, against scripted servers on 127.0.0.1:0.

Each server runs one script per accepted connection, so a test says byte for byte what the gateway answers, when it
closes, and how many connections the client opened. What matters most is what may have left: a request never goes
into a connection the server has closed, and every failure is classed as "nothing sent" or "may have been sent".
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notifier.providers import http_client
from notifier.providers.base import (
    PermanentError,
    PooledSession,
    Timeouts,
    TransientError,
    UnknownOutcomeError,
    http_request,
)

TIMEOUTS = Timeouts(connect=2.0, read=2.0)
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'

Script = Callable[["Peer"], None]


class Peer:
    """The server's side of one accepted connection: read whole requests, write raw bytes."""

    def __init__(self, sock: socket.socket, requests: list[bytes]) -> None:
        self.sock = sock
        self.buffer = b""
        self.requests = requests

    def read_request(self) -> bytes | None:
        """One whole request (head and Content-Length body), or None when the client closed."""
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        request, self.buffer = head + b"\r\n\r\n" + rest[:length], rest[length:]
        self.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


class ScriptedServer:
    """Accepts connections on 127.0.0.1:0 and runs the next script on each (the last one repeats)."""

    def __init__(self, *scripts: Script, tls: ssl.SSLContext | None = None) -> None:
        self.scripts = list(scripts)
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def url(self, path: str = "/send", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _address = self.listener.accept()
            except OSError:
                return
            script = self.scripts[min(self.connections, len(self.scripts) - 1)]
            self.connections += 1
            threading.Thread(target=self._run, args=(sock, script), daemon=True).start()

    def _run(self, sock: socket.socket, script: Script) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            with sock:
                script(Peer(sock, self.requests))
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: the port stops listening
        self.listener.close()


def answer_each(answer: bytes) -> Script:
    """Answer every request on the connection with `answer`, until the client closes."""

    def script(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(answer)

    return script


def answer_then_close(*answers: bytes) -> Script:
    """Answer the first requests with `answers` in turn, then close the connection."""

    def script(peer: Peer) -> None:
        for answer in answers:
            if peer.read_request() is None:
                return
            peer.send(answer)

    return script


def read_then_close(peer: Peer) -> None:
    """Read the request, then close without a word (a gateway that crashed while handling it)."""
    peer.read_request()


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*scripts: Script, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        servers.append(ScriptedServer(*scripts, tls=tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def session() -> Iterator[PooledSession]:
    found = PooledSession()
    yield found
    found.close()


def post(session: PooledSession | None, url: str, body: bytes = b'{"to":"+255712345678"}') -> tuple[int, bytes]:
    answer = http_request(
        "POST", url, body=body, headers={"Content-Type": "application/json"}, timeouts=TIMEOUTS, session=session
    )
    return answer.status_code, answer.content


def test_it_keeps_one_connection_alive_for_many_calls(serve: Callable[..., ScriptedServer], session: PooledSession):
    server = serve(answer_each(OK))
    for index in range(25):
        assert post(session, server.url(), b'{"n": %d}' % index) == (200, b'{"ok":true}')
    assert server.connections == 1
    assert len(server.requests) == 25
    first = server.requests[0]
    assert first.startswith(b"POST /send HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in first
    assert b"\r\nContent-Length: 8\r\n" in first and first.endswith(b'\r\n\r\n{"n": 0}')


def test_it_sends_the_query_string_and_no_fragment(serve: Callable[..., ScriptedServer], session: PooledSession):
    server = serve(answer_each(OK))
    post(session, server.url("/api/sms?user=a&key=b#part"))
    assert server.requests[0].startswith(b"POST /api/sms?user=a&key=b HTTP/1.1\r\n")


def test_it_never_writes_into_a_connection_the_server_closed_while_idle(
    serve: Callable[..., ScriptedServer], session: PooledSession
):
    """A gateway that drops idle keep-alive connections: the next call sees the close and opens a new
    connection, so the request is sent (and answered) once, never written into the dead socket."""
    server = serve(answer_then_close(OK))
    for _ in range(3):
        assert post(session, server.url())[0] == 200
        time.sleep(0.2)  # the server's close reaches the client before the next call
    assert server.connections == 3
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",  # bytes nobody asked for
    ],
    ids=["connection-close", "http-1.0", "bytes-after-the-answer"],
)
def test_it_opens_a_new_connection_after_an_answer_that_ends_keep_alive(
    serve: Callable[..., ScriptedServer], session: PooledSession, answer: bytes
):
    server = serve(answer_each(answer))
    assert post(session, server.url()) == (200, b"ok")
    assert post(session, server.url()) == (200, b"ok")
    assert server.connections == 2


def test_it_keeps_an_http_1_0_connection_the_server_keeps_alive(
    serve: Callable[..., ScriptedServer], session: PooledSession
):
    server = serve(answer_each(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"))
    post(session, server.url())
    post(session, server.url())
    assert server.connections == 1


def test_it_reads_a_chunked_answer_with_trailers(serve: Callable[..., ScriptedServer], session: PooledSession):
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b'5;name=x\r\n{"id"\r\n8\r\n:"SM-1"}\r\n0\r\nX-Trailer: 1\r\n\r\n'
    )
    server = serve(answer_each(chunked))
    assert post(session, server.url()) == (200, b'{"id":"SM-1"}')
    assert post(session, server.url()) == (200, b'{"id":"SM-1"}')
    assert server.connections == 1, "a chunked answer read to its end leaves the connection usable"


def test_it_reads_an_answer_without_length_until_the_server_closes(
    serve: Callable[..., ScriptedServer], session: PooledSession
):
    server = serve(answer_then_close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nqueued: 1"))
    assert post(session, server.url()) == (200, b"queued: 1")
    assert post(session, server.url()) == (200, b"queued: 1")
    assert server.connections == 2


def test_it_skips_interim_answers_and_reads_split_writes(serve: Callable[..., ScriptedServer], session: PooledSession):
    def slow_writer(peer: Peer) -> None:
        while peer.read_request() is not None:
            answer = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
            for start in range(0, len(answer), 7):  # the answer in small pieces
                peer.send(answer[start : start + 7])
                time.sleep(0.001)

    server = serve(slow_writer)
    assert post(session, server.url()) == (200, b'{"ok":true}')
    assert post(session, server.url()) == (200, b'{"ok":true}')
    assert server.connections == 1


def test_it_decompresses_a_gzip_answer_and_reads_headers_in_any_case(
    serve: Callable[..., ScriptedServer], session: PooledSession
):
    body = gzip.compress(b'{"reference": "R-7"}')
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\nX-Id: a\r\nx-id: b\r\nContent-Length: %d\r\n\r\n"
    answer = head % len(body)
    server = serve(answer_each(answer + body))
    response = http_request("POST", server.url(), body=b"{}", headers={}, timeouts=TIMEOUTS, session=session)
    assert response.content == b'{"reference": "R-7"}'
    assert response.headers["X-ID"] == "a, b"
    assert response.headers.get("Content-Encoding") == "gzip"
    assert b"\r\nAccept-Encoding: identity\r\n" in server.requests[0]


def test_it_calls_a_closed_port_nothing_sent(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(answer_each(OK))
    url = server.url()
    server.close()
    with pytest.raises(TransientError, match="cannot connect"):
        post(None, url)
    assert server.requests == []


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (read_then_close, "closed the connection before answering"),
        (answer_then_close(b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"ok"'), "cut short"),
        (answer_then_close(b"hello, this is not HTTP\r\n\r\n"), "not an HTTP answer"),
        (answer_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok"), "bad Content-Length"),
        (answer_then_close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), "bad chunk size"),
        (answer_then_close(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok"), "gzip"),
    ],
    ids=["no-answer", "cut-short", "not-http", "two-lengths", "bad-chunk", "bad-gzip"],
)
def test_it_calls_a_broken_answer_an_unknown_outcome(
    serve: Callable[..., ScriptedServer], session: PooledSession, script: Script, message: str
) -> None:
    server = serve(script)
    with pytest.raises(UnknownOutcomeError, match=message):
        post(session, server.url())
    assert len(server.requests) == 1, "the request reached the gateway: its outcome is unknown"


def test_it_calls_a_silent_gateway_an_unknown_outcome_after_the_read_timeout(
    serve: Callable[..., ScriptedServer],
) -> None:
    hold = threading.Event()

    def silent(peer: Peer) -> None:
        peer.read_request()
        hold.wait(5)

    server = serve(silent)
    started = time.monotonic()
    with pytest.raises(UnknownOutcomeError, match=r"read timeout of 0\.3s"):
        http_request("POST", server.url(), body=b"{}", headers={}, timeouts=Timeouts(1.0, 0.3))
    hold.set()
    assert 0.25 < time.monotonic() - started < 2.0
    assert len(server.requests) == 1


def test_it_refuses_a_header_with_a_line_break_before_sending_anything(
    serve: Callable[..., ScriptedServer], session: PooledSession
) -> None:
    server = serve(answer_each(OK))
    with pytest.raises(PermanentError, match="refused before sending"):
        http_request(
            "POST", server.url(), body=b"{}", headers={"X-Key": "a\r\nX-Evil: 1"}, timeouts=TIMEOUTS, session=session
        )
    with pytest.raises(PermanentError, match="refused before sending"):
        http_request("POST", "ftp://127.0.0.1/x", body=b"{}", headers={}, timeouts=TIMEOUTS, session=session)
    time.sleep(0.1)
    assert server.connections == 0 and server.requests == []


# --- TLS ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, as on the CI machine), and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_it_talks_tls_to_a_gateway_the_ca_bundle_trusts(
    serve: Callable[..., ScriptedServer], certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    server = serve(answer_each(OK), tls=tls_server_context(certificate))
    session = PooledSession()
    try:
        for _ in range(3):
            assert post(session, server.url(scheme="https")) == (200, b'{"ok":true}')
    finally:
        session.close()
    assert server.connections == 1
    assert len(server.requests) == 3


def test_it_sends_nothing_to_a_gateway_whose_certificate_does_not_verify(
    serve: Callable[..., ScriptedServer], certificate: tuple[Path, Path]
) -> None:
    """An untrusted certificate fails the handshake before a byte of the request leaves: transient (the next
    account, or a later retry), never an unknown outcome that would leave the family without its message."""
    server = serve(answer_each(OK), tls=tls_server_context(certificate))
    with pytest.raises(TransientError, match=r"TLS handshake .* failed"):
        post(None, server.url(scheme="https"))
    time.sleep(0.1)
    assert server.requests == []


def test_target_names_the_origin_and_refuses_what_is_not_http() -> None:
    target = http_client.Target.of("https://Gateway.example:8443/v1/sms?x=1")
    assert (target.scheme, target.host, target.port, target.host_header, target.path) == (
        "https",
        "gateway.example",
        8443,
        "Gateway.example:8443",
        "/v1/sms?x=1",
    )
    assert http_client.Target.of("http://[::1]/").host_header == "[::1]"
    assert http_client.Target.of("http://127.0.0.1").path == "/"
    for bad in ("mailto:x@y", "http:///path", "http://host:99999/", "http://host/a b"):
        with pytest.raises(http_client.RefusedBeforeSending):
            http_client.Target.of(bad)


# --- what the environment says about a URL --------------------------------------------------------------------------


def test_it_sends_netrc_credentials_for_the_gateway_host(
    serve: Callable[..., ScriptedServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login gw-user password gw-pass\n", encoding="ascii")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server = serve(answer_each(OK))
    session = PooledSession()
    try:
        assert post(session, server.url())[0] == 200
    finally:
        session.close()
    assert b"\r\nAuthorization: Basic Z3ctdXNlcjpndy1wYXNz\r\n" in server.requests[0]  # gw-user:gw-pass


def test_it_goes_through_the_proxy_the_environment_names_unless_no_proxy_exempts_the_host(
    serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(answer_each(OK))
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    session = PooledSession()
    try:
        assert post(session, "http://gateway.example:8080/api/sms?u=1") == (200, b'{"ok":true}')
    finally:
        session.close()
    assert proxy.requests[0].startswith(b"POST http://gateway.example:8080/api/sms?u=1 HTTP/1.1\r\n")

    direct = serve(answer_each(OK))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")
    session = PooledSession()
    try:
        assert post(session, direct.url())[0] == 200
    finally:
        session.close()
    assert len(proxy.requests) == 1 and len(direct.requests) == 1
    assert direct.requests[0].startswith(b"POST /send HTTP/1.1\r\n")
