"""The e2e network's DNS responder (tests/e2e/dns_responder.py), over a real UDP socket: the
exits rely on it for names only they can resolve, and for an immediate NXDOMAIN."""

from __future__ import annotations

import socket
import struct

from tests.e2e.dns_responder import RCODE_NXDOMAIN, TYPE_A, DnsResponder


def _query(ident: int, name: str, qtype: int = TYPE_A) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def _ask(dns: DnsResponder, query: bytes) -> bytes:
    host, port = dns.address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query, (host, int(port)))
        return sock.recv(512)


def test_known_names_resolve_and_others_are_nxdomain() -> None:
    with DnsResponder({"Page.Exit.Test": "127.0.0.1"}) as dns:
        reply = _ask(dns, _query(0x1234, "page.exit.test"))
        ident, flags, qd, an = struct.unpack_from("!HHHH", reply)
        assert (ident, flags & 0x8000, flags & 0xF, qd, an) == (0x1234, 0x8000, 0, 1, 1)
        assert reply.endswith(socket.inet_aton("127.0.0.1"))

        reply = _ask(dns, _query(7, "nonexistent.invalid"))
        ident, flags, qd, an = struct.unpack_from("!HHHH", reply)
        assert (ident, flags & 0xF, an) == (7, RCODE_NXDOMAIN, 0)

        reply = _ask(dns, _query(8, "page.exit.test", qtype=28))  # AAAA: no data, not NXDOMAIN
        ident, flags, qd, an = struct.unpack_from("!HHHH", reply)
        assert (ident, flags & 0xF, an) == (8, 0, 0)

        reply = _ask(dns, b"\x00\x09\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab")  # truncated
        assert struct.unpack_from("!HH", reply) == (9, 0x8000 | 0x0400 | 0x0100 | 0x0080 | 1)
        assert dns.queries == ["page.exit.test", "nonexistent.invalid", "page.exit.test"]
