"""A tiny DNS responder on 127.0.0.1 for the private network's exits: names only the exit side
can resolve.

    with DnsResponder({"page.exit.test": "127.0.0.1"}) as dns:
        resolv_conf.write_text(f"nameserver {dns.address}\\n")   # tor takes ip:port here

Tor's exit resolver (eventdns) reads ``ServerDNSResolvConfFile`` and never ``/etc/hosts``, so a
name the tests want resolved by the exit, and by nobody on the client side, needs a server.
It answers A queries for its names, gives an empty NOERROR answer to other types of its names
(AAAA), and NXDOMAIN to everything else, so a name that "doesn't resolve" fails at once instead
of after the resolver's timeouts. RFC 1035 §4.1, one question per query, no compression in
questions (resolvers don't compress them). Test support, UDP only.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Mapping
from types import TracebackType

LOOPBACK = "127.0.0.1"
TYPE_A = 1
CLASS_IN = 1
FLAG_RESPONSE = 0x8000
FLAG_AUTHORITATIVE = 0x0400
FLAG_RECURSION_DESIRED = 0x0100
FLAG_RECURSION_AVAILABLE = 0x0080
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3
TTL_S = 60
MAX_QUERY = 512


def _question(query: bytes) -> tuple[str, int, int, int]:
    """(name, type, class, end offset) of the first question; ValueError if malformed."""
    labels: list[str] = []
    offset = 12
    while True:
        if offset >= len(query):
            raise ValueError("truncated name")
        length = query[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(query):
            raise ValueError("bad label")
        labels.append(query[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(query):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", query, offset)
    return ".".join(labels).lower(), qtype, qclass, offset + 4


def answer(query: bytes, names: Mapping[str, str]) -> bytes | None:
    """The response to one query, or None for something not worth answering."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack_from("!HHH", query)
    if flags & FLAG_RESPONSE:
        return None
    base = FLAG_RESPONSE | FLAG_AUTHORITATIVE | FLAG_RECURSION_AVAILABLE
    base |= flags & FLAG_RECURSION_DESIRED
    try:
        if qdcount != 1:
            raise ValueError("one question expected")
        name, qtype, qclass, end = _question(query)
    except ValueError:
        return struct.pack("!HHHHHH", ident, base | RCODE_FORMERR, 0, 0, 0, 0)
    question = query[12:end]
    address = names.get(name)
    if address is None:
        return struct.pack("!HHHHHH", ident, base | RCODE_NXDOMAIN, 1, 0, 0, 0) + question
    if qtype != TYPE_A or qclass != CLASS_IN:
        return struct.pack("!HHHHHH", ident, base, 1, 0, 0, 0) + question
    record = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL_S, 4)
    record += ipaddress.IPv4Address(address).packed
    return struct.pack("!HHHHHH", ident, base, 1, 1, 0, 0) + question + record


class DnsResponder:
    """A UDP DNS server thread on 127.0.0.1 answering for ``names`` (name -> IPv4)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = {k.lower().rstrip("."): v for k, v in names.items()}
        self.queries: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="e2e-dns", daemon=True)

    @property
    def address(self) -> str:
        """``ip:port``, the form tor's resolv.conf reader takes for a nameserver."""
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    def __enter__(self) -> DnsResponder:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._sock.recvfrom(MAX_QUERY)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self.queries.append(_question(query)[0])
            except ValueError:
                pass
            reply = answer(query, self.names)
            if reply is not None:
                try:
                    self._sock.sendto(reply, peer)
                except OSError:
                    pass
