"""Bodies of the circuit-building cells and of the relay messages a client sends and receives
(tor-link.md §6, §7.4, §8; tor-spec §5.1, §5.1.2, §6.2, §6.3, §6.4, §7.3.1).

    create2_payload(htype, hdata)                 CREATE2:  HTYPE | HLEN | HDATA
    created2_hdata(payload)                       CREATED2: HLEN | HDATA  -> HDATA
    extend2_body(link_specifiers, htype, hdata)   EXTEND2:  NSPEC... | HTYPE | HLEN | HDATA
    begin_body("example.com", 443)                b"example.com:443\\0" (+ FLAGS when not 0)
    decode_connected(data)                        -> Connected(address, ttl)
    decode_resolved(data)                         -> [ResolvedAnswer(kind, value, ttl), ...]
    sendme_body(version, digest) / decode_sendme  circuit SENDME v0 / v1
    xoff_body() / xon_body(kbps)                  XOFF: 00; XON: 00 | KBPS_EWMA [4] (prop 344)
    decode_xoff(data) / decode_xon(data) -> kbps

Every decoder is bounded by its input (a relay message is at most 498 bytes) and raises
:class:`~webtunnel_pt.errors.CircuitProtocolError` on anything malformed; the encoders raise
:class:`~webtunnel_pt.errors.LocalProtocolError` for arguments that cannot go on the wire.
Sans-I/O.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import Literal

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import MAX_RELAY_DATA, PAYLOAD_LEN, EndReason

#: BEGIN flags (tor-spec §6.2; bit 1 is the least significant).
BEGIN_FLAG_IPV6_OK = 0x01
BEGIN_FLAG_IPV4_NOT_OK = 0x02
BEGIN_FLAG_IPV6_PREFERRED = 0x04
BEGIN_FLAGS_KNOWN = BEGIN_FLAG_IPV6_OK | BEGIN_FLAG_IPV4_NOT_OK | BEGIN_FLAG_IPV6_PREFERRED
#: A DNS name on the wire: at most 255 characters of letters, digits, '-', '_' and '.'.
MAX_HOSTNAME_LEN = 255
_HOSTNAME = re.compile(r"[a-z0-9_.-]+")
#: SENDME v1 carries a 20-byte digest (tor-spec §7.3.1).
SENDME_DIGEST_LEN = 20
#: RESOLVED answer types (tor-spec §6.4).
ANSWER_HOSTNAME = 0x00
ANSWER_IPV4 = 0x04
ANSWER_IPV6 = 0x06
ANSWER_ERROR_TRANSIENT = 0xF0
ANSWER_ERROR_NONTRANSIENT = 0xF1
#: What a CONNECTED or END without a TTL means (tor-spec §6.3: "treated as 0xffffffff").
NO_TTL = 0xFFFFFFFF

AnswerKind = Literal["ipv4", "ipv6", "hostname", "error"]


# ---- CREATE2 / CREATED2 / EXTEND2 / EXTENDED2 ------------------------------------------------


def create2_payload(htype: int, hdata: bytes) -> bytes:
    """``HTYPE [2] | HLEN [2] | HDATA`` (the cell encoder pads it to 509 bytes)."""
    if not 0 <= htype <= 0xFFFF or len(hdata) > PAYLOAD_LEN - 4:
        raise LocalProtocolError("CREATE2 handshake does not fit a cell")
    return struct.pack(">HH", htype, len(hdata)) + hdata


def _hlen_hdata(body: bytes, what: str) -> bytes:
    if len(body) < 2:
        raise CircuitProtocolError(f"{what} truncated")
    (hlen,) = struct.unpack_from(">H", body)
    if hlen > len(body) - 2:
        raise CircuitProtocolError(f"{what} HLEN {hlen} exceeds its {len(body) - 2} bytes")
    return body[2 : 2 + hlen]


def created2_hdata(payload: bytes) -> bytes:
    """The server's HDATA of a CREATED2 payload."""
    return _hlen_hdata(payload, "CREATED2")


def extended2_hdata(data: bytes) -> bytes:
    """The server's HDATA of an EXTENDED2 message (same layout as CREATED2)."""
    return _hlen_hdata(data, "EXTENDED2")


def check_link_specifiers(link_specifiers: bytes) -> None:
    """``NSPEC`` followed by exactly NSPEC ``LSTYPE | LSLEN | LSPEC`` (tor-spec §5.1.2)."""
    if not link_specifiers:
        raise LocalProtocolError("link specifiers are empty (NSPEC missing)")
    offset = 1
    for _ in range(link_specifiers[0]):
        if offset + 2 > len(link_specifiers):
            raise LocalProtocolError("link specifiers truncated")
        offset += 2 + link_specifiers[offset + 1]
    if offset != len(link_specifiers):
        raise LocalProtocolError("link specifiers length does not match NSPEC")


def extend2_body(link_specifiers: bytes, htype: int, hdata: bytes) -> bytes:
    """EXTEND2: the NSPEC-prefixed link specifiers, then ``HTYPE | HLEN | HDATA``."""
    check_link_specifiers(link_specifiers)
    body = link_specifiers + struct.pack(">HH", htype, len(hdata)) + hdata
    if len(body) > MAX_RELAY_DATA:
        raise LocalProtocolError(f"EXTEND2 body of {len(body)} bytes exceeds {MAX_RELAY_DATA}")
    return body


# ---- BEGIN / CONNECTED / END / RESOLVE / RESOLVED --------------------------------------------


def _wire_host(host: str) -> str:
    """An IP literal in canonical form (IPv6 in brackets), or a lower-case DNS name."""
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        address = None
    if address is not None:
        return f"[{address.compressed}]" if address.version == 6 else str(address)
    name = host.lower()
    if not 0 < len(name) <= MAX_HOSTNAME_LEN or not _HOSTNAME.fullmatch(name):
        raise LocalProtocolError(f"not a hostname or IP address: {host[:80]!r}")
    return name


def begin_body(host: str, port: int, flags: int = 0) -> bytes:
    """``host:port\\0`` then FLAGS [4], omitted when 0 as tor does (tor-spec §6.2)."""
    if not 1 <= port <= 0xFFFF:
        raise LocalProtocolError(f"port {port} is not in 1..65535")
    if flags & ~BEGIN_FLAGS_KNOWN:
        raise LocalProtocolError(f"BEGIN flags {flags:#x} set reserved bits")
    body = f"{_wire_host(host)}:{port}".encode("ascii") + b"\0"
    if flags:
        body += struct.pack(">I", flags)
    return body


def resolve_body(host: str) -> bytes:
    """RESOLVE: the hostname (or in-addr.arpa name), NUL-terminated (tor-spec §6.4)."""
    return _wire_host(host).strip("[]").encode("ascii") + b"\0"


@dataclass(frozen=True)
class Connected:
    """A CONNECTED body: empty (BEGIN_DIR, old exits) or the address connected to and its TTL."""

    address: str | None = None
    ttl: int | None = None


def decode_connected(data: bytes) -> Connected:
    """Empty; ``IPv4 [4] | TTL [4]``; or ``0 [4] | 6 | IPv6 [16] | TTL [4]`` (tor-spec §6.2).
    Like tor, a missing IPv4 TTL and trailing bytes are tolerated; anything else is malformed."""
    if not data:
        return Connected()
    if len(data) < 4:
        raise CircuitProtocolError(f"CONNECTED body of {len(data)} bytes is malformed")
    if data[:4] != bytes(4):
        ttl = int.from_bytes(data[4:8], "big") if len(data) >= 8 else None
        return Connected(str(ipaddress.IPv4Address(data[:4])), ttl)
    if len(data) < 25 or data[4] != 6:
        raise CircuitProtocolError("CONNECTED with address 0.0.0.0 and no IPv6 address")
    return Connected(str(ipaddress.IPv6Address(data[5:21])), int.from_bytes(data[21:25], "big"))


def decode_end_reason(data: bytes) -> int:
    """The reason byte of an END; empty means MISC (tor-spec §6.3). The EXITPOLICY address and
    TTL that may follow are not used; unknown reasons are legal."""
    return data[0] if data else EndReason.MISC


@dataclass(frozen=True)
class ResolvedAnswer:
    """One RESOLVED answer: an address or hostname with its TTL, or an error (``value`` is
    ``"transient"`` or ``"nontransient"``)."""

    kind: AnswerKind
    value: str
    ttl: int


def _answer(atype: int, value: bytes, ttl: int) -> ResolvedAnswer | None:
    if atype == ANSWER_IPV4:
        if len(value) != 4:
            raise CircuitProtocolError("RESOLVED IPv4 answer is not 4 bytes")
        return ResolvedAnswer("ipv4", str(ipaddress.IPv4Address(value)), ttl)
    if atype == ANSWER_IPV6:
        if len(value) != 16:
            raise CircuitProtocolError("RESOLVED IPv6 answer is not 16 bytes")
        return ResolvedAnswer("ipv6", str(ipaddress.IPv6Address(value)), ttl)
    if atype == ANSWER_HOSTNAME:
        if not value or not value.isascii() or not value.decode("ascii").isprintable():
            raise CircuitProtocolError("RESOLVED hostname answer is empty or not printable")
        return ResolvedAnswer("hostname", value.decode("ascii"), ttl)
    if atype in (ANSWER_ERROR_TRANSIENT, ANSWER_ERROR_NONTRANSIENT):
        transient = atype == ANSWER_ERROR_TRANSIENT
        return ResolvedAnswer("error", "transient" if transient else "nontransient", ttl)
    return None  # unknown answer types are skipped


def decode_resolved(data: bytes) -> list[ResolvedAnswer]:
    """Every ``Type [1] | Length [1] | Value | TTL [4]`` answer; unknown types are skipped,
    truncation is malformed (tor-spec §6.4)."""
    answers: list[ResolvedAnswer] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise CircuitProtocolError("RESOLVED answer truncated")
        atype, length = data[offset], data[offset + 1]
        end = offset + 2 + length + 4
        if end > len(data):
            raise CircuitProtocolError("RESOLVED answer truncated")
        value = data[offset + 2 : end - 4]
        answer = _answer(atype, value, int.from_bytes(data[end - 4 : end], "big"))
        if answer is not None:
            answers.append(answer)
        offset = end
    return answers


# ---- SENDME (tor-spec §7.3.1) ------------------------------------------------------------------


def sendme_body(version: int, digest: bytes) -> bytes:
    """A circuit SENDME: empty for version 0, ``01 | 0014 | DIGEST [20]`` for version 1."""
    if version == 0:
        return b""
    if version == 1 and len(digest) == SENDME_DIGEST_LEN:
        return struct.pack(">BH", 1, SENDME_DIGEST_LEN) + digest
    raise LocalProtocolError(f"cannot emit SENDME version {version}")


@dataclass(frozen=True)
class Sendme:
    version: int
    digest: bytes | None = None


def decode_sendme(data: bytes) -> Sendme:
    """Empty = version 0; otherwise ``VERSION | DATA_LEN | DATA``. Version 1 needs at least 20
    bytes of DATA (the first 20 are the digest); versions above 1 are not understood."""
    if not data:
        return Sendme(0)
    if len(data) < 3:
        raise CircuitProtocolError("SENDME body truncated")
    version, data_len = struct.unpack_from(">BH", data)
    if data_len > len(data) - 3:
        raise CircuitProtocolError("SENDME DATA_LEN exceeds the body")
    if version == 0:
        return Sendme(0)
    if version != 1:
        raise CircuitProtocolError(f"SENDME version {version} is not understood")
    if data_len < SENDME_DIGEST_LEN:
        raise CircuitProtocolError("SENDME v1 digest shorter than 20 bytes")
    return Sendme(1, data[3 : 3 + SENDME_DIGEST_LEN])


# ---- XOFF / XON (prop 344; tor-spec "Flow control") -------------------------------------------

#: The only XON/XOFF version there is.
FLOW_CONTROL_VERSION = 0
#: XON's advisory rate is a u32 in kB/s (1000 bytes/s); 0 means "no advice".
MAX_XON_KBPS = 0xFFFFFFFF


def xoff_body() -> bytes:
    """XOFF: ``VERSION [1]`` = 0."""
    return bytes([FLOW_CONTROL_VERSION])


def xon_body(kbps_ewma: int) -> bytes:
    """XON: ``VERSION [1]`` = 0, ``KBPS_EWMA [4]`` (the reader's drain rate, 0: no advice)."""
    if not 0 <= kbps_ewma <= MAX_XON_KBPS:
        raise LocalProtocolError(f"XON rate {kbps_ewma} does not fit 32 bits")
    return struct.pack(">BI", FLOW_CONTROL_VERSION, kbps_ewma)


def _flow_version(data: bytes, what: str) -> None:
    if not data:
        raise CircuitProtocolError(f"{what} body is empty")
    if data[0] != FLOW_CONTROL_VERSION:
        raise CircuitProtocolError(f"{what} version {data[0]} is not understood")


def decode_xoff(data: bytes) -> None:
    """Check an XOFF body: version 0; trailing bytes are ignored, as tor's parser does."""
    _flow_version(data, "XOFF")


def decode_xon(data: bytes) -> int:
    """The advisory rate (kB/s, 0: none) of an XON body: version 0, then a u32."""
    _flow_version(data, "XON")
    if len(data) < 5:
        raise CircuitProtocolError(f"XON body of {len(data)} bytes is truncated")
    (kbps,) = struct.unpack_from(">I", data, 1)
    return int(kbps)
