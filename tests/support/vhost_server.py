"""A TLS WebTunnel front on 127.0.0.1 that records what each client really sent: the SNI read
from the raw ClientHello bytes (:mod:`tests.support.clienthello`, before TLS starts) and the
``Host`` header of the request, and answers the upgrade only where its rule says so.

Per connection: peek the first TLS record (the ClientHello) without consuming it, parse its
``server_name``; complete TLS with the server context (its certificate names decide which
verified names a client can accept); read the request head; if ``accept(sni, host)``: ``101``
and echo, else ``421 Misdirected Request`` and close. Every connection is recorded in
:attr:`VhostServer.seen`, in order; :attr:`VhostServer.handshakes` counts TLS handshakes that
completed (a client that refused the certificate never gets that far).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.clienthello import HelloParseError, parse_client_hello
from tests.support.raw_server import RawServer, read_head
from tests.support.upgrade_server import SWITCHING

#: TLS record header: type, version, length (RFC 8446 §5.1).
RECORD_HEADER_BYTES = 5

Rule = Callable[[str | None, str | None], bool]


@dataclass(frozen=True)
class Seen:
    """One connection as the server saw it. ``host`` is None if no request arrived."""

    sni: str | None
    host: str | None = None
    target: str | None = None
    accepted: bool = False


def _peek_exactly(conn: socket.socket, size: int) -> bytes:
    return conn.recv(size, socket.MSG_PEEK | socket.MSG_WAITALL)


def peek_sni(conn: socket.socket) -> str | None:
    """The SNI of the ClientHello waiting on ``conn``, left in the socket for TLS to read."""
    header = _peek_exactly(conn, RECORD_HEADER_BYTES)
    if len(header) < RECORD_HEADER_BYTES:
        raise HelloParseError("connection closed before a TLS record")
    length = int.from_bytes(header[3:5], "big")
    record = _peek_exactly(conn, RECORD_HEADER_BYTES + length)
    return parse_client_hello(record).server_name


def host_of(head: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"host":
            return value.strip().decode("latin-1")
    return None


class VhostServer(RawServer):
    def __init__(self, context: ssl.SSLContext, accept: Rule = lambda sni, host: True) -> None:
        self.context = context
        self.accept = accept
        self.seen: list[Seen] = []
        self.handshakes = 0
        self._lock = threading.Condition()
        super().__init__(self._serve)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)
            self._lock.notify_all()

    def wait_seen(self, count: int, timeout_s: float = 10.0) -> list[Seen]:
        """The first ``count`` connections once the server has recorded them (the client may
        give up before the server's side of a failed handshake has ended)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.seen) >= count, timeout_s):
                raise TimeoutError(f"server recorded {len(self.seen)} of {count} connections")
            return list(self.seen[:count])

    def _serve(self, conn: socket.socket) -> None:
        try:
            sni = peek_sni(conn)
        except HelloParseError:
            return
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            self._record(Seen(sni))
            return
        with self._lock:
            self.handshakes += 1
        with tls:
            head = read_head(tls)
            host = host_of(head)
            target = head.split(b" ", 2)[1].decode("latin-1") if b" " in head else None
            accepted = self.accept(sni, host)
            self._record(Seen(sni, host, target, accepted))
            if not accepted:
                tls.sendall(b"HTTP/1.1 421 Misdirected Request\r\nContent-Length: 0\r\n\r\n")
                return
            tls.sendall(SWITCHING)
            while data := tls.recv(65536):
                tls.sendall(data)
