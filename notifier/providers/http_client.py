"""HTTP/1.1 calls to a gateway over one kept-alive connection per origin, on the standard library's socket and ssl.

Why not urllib3 for every call: on the delivery path a call through a warm urllib3 pool costs ~0.3 ms of CPU,
most of it parsing headers through the email package and walking the pool's layers; the same call here costs
~0.05 ms. urllib3 still carries the calls that go through a proxy (notifier.providers.base).

What may have left decides the error, as for urllib3's calls:
- `CannotConnect` (and `ConnectTimedOut`): nothing was sent — no such host, refused, a TLS handshake that failed;
- `NoAnswer` (read timeout) and `Dropped` (connection closed or broken while sending or reading, an answer that is
  not HTTP): the request may have reached the gateway;
- `RefusedBeforeSending` (a ValueError): the request could not be written at all (a header with a line break).

A kept-alive connection is checked before it is used again: one the server has closed (or that holds bytes nobody
asked for) is replaced by a new one, so that a request is never written into a connection the server has left.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 65536  # status line and headers together
MAX_BODY_BYTES = 16 * 1024 * 1024  # a gateway's answer is a few hundred bytes; this is the point of refusing it
_READ_SIZE = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_IN_HEADERS = re.compile(r"[\r\n\0]")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS_LINE = re.compile(rb"^HTTP/1\.([01]) ([0-9]{3})(?: .*)?$", re.DOTALL)


class HttpClientError(Exception):
    """A call that did not end with an answer."""


class CannotConnect(HttpClientError):
    """No connection: nothing was sent."""


class ConnectTimedOut(CannotConnect):
    """The connection (or its TLS handshake) took longer than the connect timeout: nothing was sent."""


class NoAnswer(HttpClientError):
    """The request went out (or started to) and no answer came within the read timeout."""


class Dropped(HttpClientError):
    """The connection broke, or the answer was not HTTP, after the request started to leave."""


class RefusedBeforeSending(HttpClientError, ValueError):
    """The request cannot be written (a bad method, header or URL): nothing was sent."""


class Headers(Mapping[str, str]):
    """An answer's headers, looked up in any case; repeated headers joined with ", "."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            key = name.lower()
            found = self._items.get(key)
            self._items[key] = (name, value) if found is None else (found[0], f"{found[1]}, {value}")

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _value in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class Target:
    """Where a URL's request goes: the origin, the Host header, and the request target (path and query)."""

    scheme: str
    host: str
    port: int
    host_header: str
    path: str

    @classmethod
    def of(cls, url: str) -> Target:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RefusedBeforeSending(f"bad URL {url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise RefusedBeforeSending(f"bad URL {url!r}: http(s)://host/path expected")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _FORBIDDEN_IN_HEADERS.search(path) or " " in path:
            raise RefusedBeforeSending(f"bad URL {url!r}: spaces or line breaks in the path")
        host_header = parts.netloc.rpartition("@")[2]
        return cls(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], host_header, path)


def request_head(method: str, target: Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request line and headers, ready to go out. A header may not hold a line break (that would smuggle in
    another header or request): RefusedBeforeSending."""
    if not _TOKEN.match(method):
        raise RefusedBeforeSending(f"bad method {method!r}")
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}", "Accept-Encoding: identity"]
    for name, value in headers.items():
        if not _TOKEN.match(name) or _FORBIDDEN_IN_HEADERS.search(value):
            raise RefusedBeforeSending(f"bad header {name!r}: a name is one word, a value holds no line break")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise RefusedBeforeSending(f"a header holds characters HTTP cannot carry: {exc}") from None


class Connection:
    """One kept-alive connection to one origin, used by one thread at a time."""

    def __init__(self, target: Target, tls: ssl.SSLContext | None) -> None:
        self.target = target
        self.tls = tls
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(
        self, method: str, head: bytes, body: bytes | None, *, connect_timeout: float, read_timeout: float
    ) -> Answer:
        if self.sock is not None and self._left():
            self.close()
        sock = self.sock if self.sock is not None else self._connect(connect_timeout)
        try:
            sock.settimeout(read_timeout)
            sock.sendall(head + body if body else head)
            answer, keep = self._read_answer(method)
        except TimeoutError:
            self.close()
            raise NoAnswer("no answer within the read timeout") from None
        except Dropped:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise Dropped(str(exc) or type(exc).__name__) from None
        if not keep or self.buffer:  # bytes after the answer: nobody knows what they belong to
            self.close()
        return answer

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self.buffer = None, b""

    def _left(self) -> bool:
        """True when the idle connection is readable: the server closed it, or sent something unasked for."""
        assert self.sock is not None
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))

    def _connect(self, timeout: float) -> socket.socket:
        target = self.target
        try:
            sock = socket.create_connection((target.host, target.port), timeout=timeout)
        except TimeoutError:
            raise ConnectTimedOut(f"{target.host}:{target.port} did not accept within {timeout}s") from None
        except OSError as exc:
            raise CannotConnect(f"{target.host}:{target.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the request leaves in one write anyway
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_hostname=target.host)
            except TimeoutError:
                sock.close()
                raise ConnectTimedOut(f"TLS handshake with {target.host} took longer than {timeout}s") from None
            except OSError as exc:  # ssl.SSLError and certificate errors among them
                sock.close()
                raise CannotConnect(f"TLS handshake with {target.host} failed: {exc}") from None
        self.sock, self.buffer = sock, b""
        return sock

    # --- reading an answer (RFC 9112) ---

    def _fill(self) -> bool:
        assert self.sock is not None
        data = self.sock.recv(_READ_SIZE)
        if not data:
            return False
        self.buffer += data
        return True

    def _head(self) -> list[bytes]:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
                return head.split(b"\r\n")
            end = self.buffer.find(b"\n\n")  # lines ended by LF alone: wrong, and tolerated as most clients do
            if end >= 0:
                head, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
                return [line.rstrip(b"\r") for line in head.split(b"\n")]
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise Dropped(f"the answer's headers are longer than {MAX_HEAD_BYTES} bytes")
            if not self._fill():
                if not self.buffer:
                    raise Dropped("the gateway closed the connection before answering")
                raise Dropped("the answer's headers were cut short")

    def _read_answer(self, method: str) -> tuple[Answer, bool]:
        while True:
            lines = self._head()
            matched = _STATUS_LINE.match(lines[0])
            if matched is None:
                raise Dropped(f"not an HTTP answer: {lines[0][:80]!r}")
            status = int(matched.group(2))
            if not 100 <= status < 200:
                break
            if status == 101:
                raise Dropped("the gateway switched protocols")  # 100 Continue and 1xx hints: the answer follows
        pairs = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise Dropped(f"a malformed header line in the answer: {line[:80]!r}")
            pairs.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        headers = Headers(pairs)
        tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
        keep = "close" not in tokens if matched.group(1) == b"1" else "keep-alive" in tokens
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "Transfer-Encoding" in headers:
            if headers["Transfer-Encoding"].lower().rsplit(",", 1)[-1].strip() != "chunked":
                body, keep = self._until_closed(), False
            else:
                body = self._chunked()
        elif "Content-Length" in headers:
            body = self._exactly(_content_length(headers["Content-Length"]))
        else:
            body, keep = self._until_closed(), False
        return Answer(status, headers, _decoded(body, headers.get("Content-Encoding", ""))), keep

    def _exactly(self, length: int) -> bytes:
        if length > MAX_BODY_BYTES:
            raise Dropped(f"an answer of {length} bytes (more than {MAX_BODY_BYTES})")
        while len(self.buffer) < length:
            if not self._fill():
                raise Dropped(f"the answer was cut short ({len(self.buffer)} of {length} bytes)")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return body

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD_BYTES or not self._fill():
                raise Dropped("the chunked answer was cut short")
        line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return line

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self._line().split(b";", 1)[0].strip()
            try:
                length = int(line, 16)
            except ValueError:
                raise Dropped(f"a bad chunk size in the answer: {line[:20]!r}") from None
            if length < 0:
                raise Dropped(f"a bad chunk size in the answer: {line[:20]!r}")
            if length == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            size += length
            if size > MAX_BODY_BYTES:
                raise Dropped(f"an answer of more than {MAX_BODY_BYTES} bytes")
            parts.append(self._exactly(length))
            if self._line():
                raise Dropped("a chunk longer than its size")

    def _until_closed(self) -> bytes:
        while self._fill():
            if len(self.buffer) > MAX_BODY_BYTES:
                raise Dropped(f"an answer of more than {MAX_BODY_BYTES} bytes")
        body, self.buffer = self.buffer, b""
        return body


def _content_length(value: str) -> int:
    lengths = {item.strip() for item in value.split(",")}
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise Dropped(f"a bad Content-Length in the answer: {value[:40]!r}")
    return int(lengths.pop())


def _decoded(body: bytes, encoding: str) -> bytes:
    """The body as sent before compression (we ask for none; a server may compress all the same)."""
    kind = encoding.strip().lower()
    if not body or kind not in ("gzip", "x-gzip", "deflate"):
        return body
    try:
        if kind == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise Dropped(f"the answer's {kind} body does not decompress: {exc}") from None


class Client:
    """Kept-alive connections of one thread, one per origin (scheme, host, port)."""

    def __init__(self, ca_file: str | None) -> None:
        self.ca_file = ca_file
        self._tls: ssl.SSLContext | None = None
        self._targets: dict[str, Target] = {}
        self._connections: dict[tuple[str, str, int], Connection] = {}

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        connect_timeout: float,
        read_timeout: float,
    ) -> Answer:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = Target.of(url)
        head = request_head(method, target, headers, body)
        origin = (target.scheme, target.host, target.port)
        connection = self._connections.get(origin)
        if connection is None:
            tls = self._tls_context() if target.scheme == "https" else None
            connection = self._connections[origin] = Connection(target, tls)
        return connection.request(method, head, body, connect_timeout=connect_timeout, read_timeout=read_timeout)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.ca_file)
        return self._tls

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
