"""The HTTP CONNECT client handshake (RFC 9110 §9.3.6) for an ``http://`` upstream proxy.

Sans-I/O, in the vocabulary of :class:`webtunnel_pt.socks.client.ProxyHandshake`. The request
is written and the reply parsed by ``h11.Connection(h11.CLIENT)``: after a 2xx the connection
has switched protocols and h11's ``trailing_data`` holds the bytes behind the reply, which
belong to the tunnel. The response head is bounded by :data:`MAX_RESPONSE_HEAD_BYTES`, and
:attr:`~HttpConnectClientHandshake.max_read_bytes` never lets the caller read past its end.
"""

from __future__ import annotations

import base64

import h11

from webtunnel_pt.errors import ProxyAuthRefused, ProxyError, SocksReply
from webtunnel_pt.socks.client import ProxyConnected, ProxyHandshake
from webtunnel_pt.socks.codes import authority

__all__ = ["HTTP_STATUS_REPLIES", "MAX_RESPONSE_HEAD_BYTES", "HttpConnectClientHandshake"]

#: HTTP response head to CONNECT: a status line and a few headers; h11 allows 16 KiB. Interim
#: (1xx) heads count towards it, so a proxy cannot keep us reading them forever.
MAX_RESPONSE_HEAD_BYTES = 16 * 1024

#: h11's reason for refusing a head quotes the line; a garbage line can be 16 KiB long.
MAX_DETAIL_CHARS = 120

#: Status codes with a more precise meaning for tor than "general failure".
HTTP_STATUS_REPLIES = {
    403: SocksReply.NOT_ALLOWED,  # the proxy's rules forbid this target or port
    502: SocksReply.HOST_UNREACHABLE,  # Bad Gateway: the proxy could not connect
    503: SocksReply.HOST_UNREACHABLE,  # Service Unavailable
    504: SocksReply.HOST_UNREACHABLE,  # Gateway Timeout
}


class HttpConnectClientHandshake(ProxyHandshake):
    """``CONNECT host:port HTTP/1.1`` with ``Host`` and, given credentials,
    ``Proxy-Authorization: Basic`` (RFC 7617). Any 2xx opens the tunnel (RFC 9110 §9.3.6);
    1xx heads are skipped; 407 (or 401) means refused credentials; anything else fails."""

    protocol = "HTTP CONNECT"

    def __init__(
        self,
        proxy: str,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        target = authority(host, port)
        super().__init__(proxy, target)
        headers = [("Host", target)]
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            headers.append(("Proxy-Authorization", f"Basic {token}"))
        self._http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD_BYTES)
        request = h11.Request(method="CONNECT", target=target, headers=headers)
        self._out += self._http.send(request) or b""
        self._has_credentials = username is not None
        self._received = 0  # bytes given to h11: the response heads, and maybe bytes behind
        self._last = b""  # the last two bytes received, to see how the head could end

    def receive_data(self, data: bytes) -> None:
        super().receive_data(data)
        if self._result is None:
            self._last = (self._last + data)[-2:]

    def _reply_bytes_missing(self) -> int:
        # A head ends with an empty line: CRLF CRLF, or LF LF from a lax server. Read no further
        # than the shortest way it could end from here.
        if self._last.endswith((b"\n", b"\n\r")):
            return 1
        return 2

    def _advance(self) -> ProxyConnected | None:
        if self._in:
            self._received += len(self._in)
            self._http.receive_data(bytes(self._in))
            self._in.clear()
        while True:
            try:
                event = self._http.next_event()
            except h11.RemoteProtocolError as exc:
                self._check_head_size(self._received)
                detail = str(exc)[:MAX_DETAIL_CHARS]
                raise self._invalid(f"response: not valid HTTP/1.x ({detail})") from None
            if event is h11.NEED_DATA:
                self._check_head_size(self._received)
                return None
            if isinstance(event, h11.InformationalResponse):
                continue  # an interim response; the final one follows
            if not isinstance(event, h11.Response):  # pragma: no cover - h11 gives a response
                raise self._invalid(f"response ({type(event).__name__})")
            if 200 <= event.status_code < 300:
                behind, _ = self._http.trailing_data
                self._check_head_size(self._received - len(behind))
                self._in += behind  # the tunnel's first bytes: trailing_data
                return ProxyConnected()
            raise self._failure(event.status_code, event.reason)

    def _check_head_size(self, head_bytes: int) -> None:
        if head_bytes > MAX_RESPONSE_HEAD_BYTES:
            raise self._invalid(f"response: head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes")

    def _failure(self, status: int, raw_reason: bytes) -> ProxyError:
        reason = "".join(c if c.isprintable() else "?" for c in raw_reason.decode("latin-1"))
        shown = f"HTTP {status} {reason}".rstrip()
        if status in (401, 407):  # 407 per RFC 9110 §15.5.8; tinyproxy answers 401
            what = "refused the credentials" if self._has_credentials else "wants credentials"
            return ProxyAuthRefused(f"{self._proxy} {what} ({shown})")
        reply = HTTP_STATUS_REPLIES.get(status, SocksReply.GENERAL_FAILURE)
        return self._refused(shown, reply)
