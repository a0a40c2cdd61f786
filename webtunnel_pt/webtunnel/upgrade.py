"""The WebTunnel HTTP/1.1 upgrade, client side, as a sans-I/O core on top of h11.

The request is byte-for-byte what the official Go client writes (``webtunnel-wire.md`` §3.6)::

    GET /<path> HTTP/1.1\\r\\n
    Host: <servername or url host>\\r\\n
    User-Agent: Go-http-client/1.1\\r\\n
    Connection: upgrade\\r\\n
    Upgrade: websocket\\r\\n
    \\r\\n

An IPv6 literal goes into ``Host`` in brackets (RFC 9110 §7.2, RFC 3986 §3.2.2); Go's
``Request.Write`` would copy it bare, which front servers such as nginx misread as host
``2001`` with a port.

The answer must be ``HTTP/1.1 101`` with ``Upgrade: websocket`` and a ``Connection`` token list
containing ``upgrade`` (both case-insensitive); ``100 Continue`` before it is skipped. From the
end of that head on, the connection carries raw tunnel bytes: whatever arrived behind the head
is handed on in :attr:`UpgradeAccepted.trailing_data`, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11

from webtunnel_pt.errors import LocalProtocolError, UpgradeError, UpgradeRejected

#: Bound on a response head. A 101 is ~100 bytes; reverse proxies add a few headers. 16 KiB is
#: h11's own default and far beyond any honest answer.
MAX_RESPONSE_HEAD_BYTES = 16 * 1024
#: Informational (1xx) responses tolerated before the 101; more is a server playing games.
MAX_INFORMATIONAL_RESPONSES = 4
USER_AGENT = "Go-http-client/1.1"
EXPECTED_REASON = "Switching Protocols"


@dataclass(frozen=True)
class UpgradeAccepted:
    """The server switched protocols; ``trailing_data`` is the first tunnel payload."""

    reason: str
    headers: tuple[tuple[str, str], ...]
    trailing_data: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key == lowered), None)


def _decode_headers(headers: h11._headers.Headers) -> tuple[tuple[str, str], ...]:
    return tuple((name.decode("ascii").lower(), value.decode("latin-1")) for name, value in headers)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def host_header(host: str) -> str:
    """The ``Host`` value for a server name: an IPv6 literal in brackets, without a zone id
    (``fe80::1%eth0`` names an interface of this machine; Go drops it too), anything else as
    is."""
    if ":" not in host or host.startswith("["):
        return host
    return f"[{host.partition('%')[0]}]"


class UpgradeClient:
    """One upgrade exchange: :meth:`data_to_send` first, then feed the response."""

    def __init__(self, host: str, target: str) -> None:
        if not target.startswith("/"):
            raise LocalProtocolError("request target must start with '/'")
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD_BYTES)
        self._outgoing = (
            self._conn.send(
                h11.Request(
                    method="GET",
                    target=target,
                    headers=[
                        ("Host", host_header(host)),
                        ("User-Agent", USER_AGENT),
                        ("Connection", "upgrade"),
                        ("Upgrade", "websocket"),
                    ],
                )
            )
            or b""
        )
        self._informational = 0
        self._received = 0
        self._result: UpgradeAccepted | None = None

    def data_to_send(self) -> bytes:
        out, self._outgoing = self._outgoing, b""
        return out

    def receive_data(self, data: bytes) -> None:
        if self._result is not None:
            raise LocalProtocolError("upgrade is complete; data belongs to the tunnel")
        self._received += len(data)
        self._conn.receive_data(data)

    def receive_eof(self) -> None:
        self.receive_data(b"")

    def next_event(self) -> UpgradeAccepted | None:
        """Return the accepted upgrade, ``None`` if more bytes are needed, or raise."""
        if self._result is not None:
            return self._result
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                if exc.error_status_hint == 431:
                    raise UpgradeError(
                        f"response head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes"
                    ) from exc
                raise UpgradeError(f"invalid HTTP response: {_short(str(exc))}") from exc
            if event is h11.NEED_DATA:
                return None
            self._check_head_size()
            if isinstance(event, h11.ConnectionClosed):
                raise UpgradeError("connection closed before the response head ended")
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return self._accept(event)
                self._informational += 1
                if self._informational > MAX_INFORMATIONAL_RESPONSES:
                    raise UpgradeError("too many informational responses")
                continue
            if isinstance(event, h11.Response):
                raise UpgradeRejected(event.status_code, event.reason.decode("latin-1"))
            raise UpgradeError(f"unexpected HTTP event {type(event).__name__}")

    def _check_head_size(self) -> None:
        """h11 bounds a head only while it is incomplete; one that arrived whole in a single
        chunk is measured here: everything parsed so far, i.e. received minus still buffered."""
        parsed = self._received - len(self._conn.trailing_data[0])
        if parsed > MAX_RESPONSE_HEAD_BYTES:
            raise UpgradeError(f"response head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes")

    def _accept(self, event: h11.InformationalResponse) -> UpgradeAccepted:
        reason = event.reason.decode("latin-1")
        if event.http_version != b"1.1":
            raise UpgradeRejected(
                101, reason, f"HTTP/{event.http_version.decode('ascii')} cannot upgrade"
            )
        headers = _decode_headers(event.headers)
        upgrade = [value.strip().lower() for key, value in headers if key == "upgrade"]
        if upgrade[:1] != ["websocket"]:
            found = upgrade[0] if upgrade else "none"
            raise UpgradeRejected(101, reason, f"Upgrade header is {_short(found, 40)!r}")
        tokens = {
            token.strip().lower()
            for key, value in headers
            if key == "connection"
            for token in value.split(",")
        }
        if "upgrade" not in tokens:
            raise UpgradeRejected(101, reason, "Connection header lacks 'upgrade'")
        trailing, _closed = self._conn.trailing_data
        self._result = UpgradeAccepted(reason, headers, bytes(trailing))
        return self._result
