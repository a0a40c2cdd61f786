"""One HTTP/1.1 GET (or HEAD) as a sans-I/O exchange on top of h11, for ``webtunnel-pt fetch``.

    url = parse_url("https://example.com/a?b")     # scheme, host, port, target, Host header
    get = HttpGet(url, head=False)
    send(get.request_bytes())
    get.receive_data(data) -> [ResponseHead | BodyChunk | ResponseEnd, ...]; b"" means EOF

Bounds: the status line and headers together at most :data:`MAX_HEAD_BYTES` (h11's
``max_incomplete_event_size``); a body chunk is what was fed, so the caller holds one read at a
time and writes it out. Interim 1xx responses are skipped (at most :data:`MAX_INTERIM`).
Redirects are not followed: a 3xx is the answer (its ``Location`` is reported). A response
that is not HTTP/1.1 or ends early is a :class:`~webtunnel_pt.errors.RemoteProtocolError`;
a bad URL a :class:`~webtunnel_pt.errors.ConfigError`. Sans-I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from webtunnel_pt import __version__
from webtunnel_pt.errors import ConfigError, RemoteProtocolError

__all__ = [
    "MAX_HEAD_BYTES",
    "BodyChunk",
    "HttpGet",
    "ResponseEnd",
    "ResponseHead",
    "Url",
    "parse_url",
]

#: Status line and headers: browsers allow about this much (Firefox 128 KiB, nginx 64 KiB).
MAX_HEAD_BYTES = 64 * 1024
#: 1xx answers skipped before the real one; a server sending more is not answering.
MAX_INTERIM = 8
MAX_URL_CHARS = 8192
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Url:
    scheme: str
    host: str
    port: int
    target: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@dataclass(frozen=True)
class ResponseHead:
    status: int
    reason: str
    http_version: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for k, v in self.headers if k == lower), None)

    @property
    def status_line(self) -> str:
        reason = "".join(c for c in self.reason if c.isprintable())[:200]
        return f"HTTP/{self.http_version} {self.status} {reason}".rstrip()


@dataclass(frozen=True)
class BodyChunk:
    data: bytes


@dataclass(frozen=True)
class ResponseEnd:
    pass


ResponseEvent = ResponseHead | BodyChunk | ResponseEnd


def parse_url(text: str) -> Url:
    """An ``http://`` or ``https://`` URL with an ASCII host; the fragment is dropped."""
    if len(text) > MAX_URL_CHARS:
        raise ConfigError(f"URL is over {MAX_URL_CHARS} characters")
    if not text.isascii() or any(c.isspace() or not c.isprintable() for c in text):
        raise ConfigError("URL must be printable ASCII without spaces (percent-encode it)")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"only http:// and https:// URLs can be fetched, not {scheme or text!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("URLs with user:password@ are not supported")
    host = parts.hostname
    if not host:
        raise ConfigError(f"URL has no host: {text!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ConfigError(f"URL has a bad port: {text!r}") from None
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return Url(scheme, host, port, target)


class HttpGet:
    """The client side of one request and its response."""

    def __init__(self, url: Url, *, head: bool = False) -> None:
        self.url = url
        self.head = head
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._interim = 0
        self._ended = False

    def request_bytes(self) -> bytes:
        headers = [
            ("Host", self.url.host_header),
            ("User-Agent", f"webtunnel-pt/{__version__}"),
            ("Accept", "*/*"),
            ("Connection", "close"),
        ]
        method = "HEAD" if self.head else "GET"
        request = h11.Request(method=method, target=self.url.target, headers=headers)
        return (self._conn.send(request) or b"") + (self._conn.send(h11.EndOfMessage()) or b"")

    def receive_data(self, data: bytes) -> list[ResponseEvent]:
        """Feed what the server sent (``b""`` at its EOF); return what it completed."""
        if self._ended:
            return []
        self._conn.receive_data(data)
        events: list[ResponseEvent] = []
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(f"bad HTTP response: {exc}") from None
            if event is h11.NEED_DATA:
                if not data and not events:
                    raise RemoteProtocolError("the server closed the connection mid-response")
                return events
            if isinstance(event, h11.InformationalResponse):
                self._interim += 1
                if self._interim > MAX_INTERIM:
                    raise RemoteProtocolError(f"more than {MAX_INTERIM} interim responses")
            elif isinstance(event, h11.Response):
                events.append(
                    ResponseHead(
                        status=event.status_code,
                        reason=event.reason.decode("latin-1"),
                        http_version=event.http_version.decode("ascii"),
                        headers=tuple(
                            (k.decode("latin-1").lower(), v.decode("latin-1"))
                            for k, v in event.headers
                        ),
                    )
                )
            elif isinstance(event, h11.Data):
                events.append(BodyChunk(bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                self._ended = True
                events.append(ResponseEnd())
                return events
            elif isinstance(event, h11.ConnectionClosed):
                raise RemoteProtocolError("the server closed the connection mid-response")
            else:  # pragma: no cover - h11 has no other client-side events
                return events
