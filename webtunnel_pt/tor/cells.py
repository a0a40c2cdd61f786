"""Tor cells for link protocols 3-5 (tor-link.md §3, §4, §7.1, §9; tor-spec §3).

    Cell(circ_id, command, payload)     one cell; the payload of a fixed cell is 509 bytes
    encode_cell(cell, link_version)     -> bytes on the wire
    CellParser                          bytes -> cells; split reads welcome; circ-id length
                                        follows the negotiated link version
    versions / netinfo / destroy        payload codecs of link-level cells
    RelayCell                           the decrypted 509-byte relay payload (§7.1)

Sans-I/O: nothing here touches the network.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from webtunnel_pt.errors import LinkProtocolError, LocalProtocolError

#: Payload of every fixed-length cell (§3).
PAYLOAD_LEN = 509
#: Relay header: command, recognized, stream id, digest, length (§7.1).
RELAY_HEADER_LEN = 11
#: Most data one relay cell carries (509 - 11).
MAX_RELAY_DATA = PAYLOAD_LEN - RELAY_HEADER_LEN
#: Link versions offered in our VERSIONS cell: the list tor's own clients send (§4.1), so
#: the relay sees nothing unusual.
SUPPORTED_LINK_VERSIONS = (3, 4, 5)
#: The oldest version a channel may run: 4 brought 4-byte circuit ids, and every relay
#: since tor 0.2.4 speaks it; a relay that only agrees on 3 is refused.
MIN_LINK_VERSION = 4
#: A variable-length cell is at most this long; it is what the 2-byte length allows.
MAX_VAR_PAYLOAD = 0xFFFF

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CellCommand(IntEnum):
    """Cell commands (§3); below 128 and not 7 = fixed length."""

    PADDING = 0
    CREATE = 1
    CREATED = 2
    RELAY = 3
    DESTROY = 4
    CREATE_FAST = 5
    CREATED_FAST = 6
    VERSIONS = 7
    NETINFO = 8
    RELAY_EARLY = 9
    CREATE2 = 10
    CREATED2 = 11
    PADDING_NEGOTIATE = 12
    VPADDING = 128
    CERTS = 129
    AUTH_CHALLENGE = 130
    AUTHENTICATE = 131
    AUTHORIZE = 132


class DestroyReason(IntEnum):
    """DESTROY reasons (§9)."""

    NONE = 0
    PROTOCOL = 1
    INTERNAL = 2
    REQUESTED = 3
    HIBERNATING = 4
    RESOURCELIMIT = 5
    CONNECTFAILED = 6
    OR_IDENTITY = 7
    CHANNEL_CLOSED = 8
    FINISHED = 9
    TIMEOUT = 10
    DESTROYED = 11
    NOSUCHSERVICE = 12


class RelayCommand(IntEnum):
    """Relay commands (§7.1)."""

    BEGIN = 1
    DATA = 2
    END = 3
    CONNECTED = 4
    SENDME = 5
    EXTEND = 6
    EXTENDED = 7
    TRUNCATE = 8
    TRUNCATED = 9
    DROP = 10
    RESOLVE = 11
    RESOLVED = 12
    BEGIN_DIR = 13
    EXTEND2 = 14
    EXTENDED2 = 15
    CONFLUX_LINK = 19  # conflux (prop 329; tor-spec "Conflux")
    CONFLUX_LINKED = 20
    CONFLUX_LINKED_ACK = 21
    CONFLUX_SWITCH = 22
    XOFF = 43  # flow control (prop 344; tor-spec "Flow control")
    XON = 44


class EndReason(IntEnum):
    """RELAY_END reasons (§8.3)."""

    MISC = 1
    RESOLVEFAILED = 2
    CONNECTREFUSED = 3
    EXITPOLICY = 4
    DESTROY = 5
    DONE = 6
    TIMEOUT = 7
    NOROUTE = 8
    HIBERNATING = 9
    INTERNAL = 10
    RESOURCELIMIT = 11
    CONNRESET = 12
    TORPROTOCOL = 13
    NOTDIRECTORY = 14


def reason_name(enum: type[IntEnum], value: int) -> str:
    """``FINISHED (9)`` for known codes, ``9`` otherwise: unknown reasons are legal."""
    try:
        return f"{enum(value).name} ({value})"
    except ValueError:
        return str(value)


def is_variable_length(command: int) -> bool:
    """VERSIONS and every command >= 128 carry a length field (§3)."""
    return command == CellCommand.VERSIONS or command >= 128


def circ_id_len(link_version: int | None) -> int:
    """2 bytes up to link 3 and before VERSIONS is done, 4 bytes from link 4 on (§3)."""
    return 4 if link_version is not None and link_version >= 4 else 2


class Cell(NamedTuple):
    """One cell. ``command`` stays an ``int``: unknown commands must be ignorable. (A named
    tuple rather than a frozen dataclass: one is made per cell, and this is cheaper.)"""

    circ_id: int
    command: int
    payload: bytes


def encode_cell(cell: Cell, link_version: int | None) -> bytes:
    """Serialize a cell; fixed payloads are NUL-padded to 509 bytes (§3)."""
    id_len = circ_id_len(link_version)
    if not 0 <= cell.circ_id < 1 << (8 * id_len):
        raise LocalProtocolError(f"circuit id {cell.circ_id:#x} does not fit {id_len} bytes")
    head = cell.circ_id.to_bytes(id_len, "big") + bytes([cell.command])
    if is_variable_length(cell.command):
        if len(cell.payload) > MAX_VAR_PAYLOAD:
            raise LocalProtocolError("variable-length cell payload too long")
        return head + struct.pack(">H", len(cell.payload)) + cell.payload
    if len(cell.payload) > PAYLOAD_LEN:
        raise LocalProtocolError(f"fixed cell payload longer than {PAYLOAD_LEN} bytes")
    return head + cell.payload.ljust(PAYLOAD_LEN, b"\0")


class CellParser:
    """Turn received bytes into cells.

    ``link_version`` is ``None`` until VERSIONS is negotiated (2-byte circuit ids); set it
    right after the VERSIONS cell is parsed and the rest of the buffer is read with the new
    circuit-id length.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.link_version: int | None = None

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_cell(self) -> Cell | None:
        """The next complete cell, or ``None`` when more bytes are needed."""
        id_len = circ_id_len(self.link_version)
        if len(self._buffer) < id_len + 1:
            return None
        command = self._buffer[id_len]
        if is_variable_length(command):
            if len(self._buffer) < id_len + 3:
                return None
            (length,) = struct.unpack_from(">H", self._buffer, id_len + 1)
            start = id_len + 3
        else:
            length, start = PAYLOAD_LEN, id_len + 1
        end = start + length
        if len(self._buffer) < end:
            return None
        circ_id = int.from_bytes(self._buffer[:id_len], "big")
        payload = bytes(self._buffer[start:end])
        del self._buffer[:end]
        return Cell(circ_id, command, payload)

    def take_cells(self) -> list[Cell]:
        """Every complete cell in the buffer, in order (what :meth:`next_cell` would return
        one by one, with one buffer compaction instead of one per cell). Needs the link
        version."""
        if self.link_version is None:
            raise LocalProtocolError("take_cells needs the negotiated link version")
        id_len = circ_id_len(self.link_version)
        circ_id_at = (_CIRC_ID_4 if id_len == 4 else _CIRC_ID_2).unpack_from
        data = bytes(self._buffer)  # one copy; each payload is then one slice of it
        size = len(data)
        fixed = id_len + 1 + PAYLOAD_LEN
        offset = 0
        cells: list[Cell] = []
        append = cells.append
        while size - offset > id_len:
            command = data[offset + id_len]
            if command >= 128 or command == CellCommand.VERSIONS:  # is_variable_length
                if size - offset < id_len + 3:
                    break
                (length,) = _LENGTH.unpack_from(data, offset + id_len + 1)
                start = offset + id_len + 3
                end = start + length
            else:
                start, end = offset + id_len + 1, offset + fixed
            if end > size:
                break
            append(Cell(circ_id_at(data, offset)[0], command, data[start:end]))
            offset = end
        if offset:
            del self._buffer[:offset]
        return cells


_RELAY_HEADER = struct.Struct(">BHHIH")  # command, recognized, stream id, digest, length
_CIRC_ID_2 = struct.Struct(">H")
_CIRC_ID_4 = struct.Struct(">I")
_LENGTH = struct.Struct(">H")


# ---- VERSIONS (§4.1) ------------------------------------------------------------------------


def versions_cell(versions: Iterable[int] = SUPPORTED_LINK_VERSIONS) -> Cell:
    """``00 00 07 00 06 00 03 00 04 00 05`` for the default versions."""
    return Cell(0, CellCommand.VERSIONS, b"".join(struct.pack(">H", v) for v in versions))


def decode_versions(payload: bytes) -> tuple[int, ...]:
    if len(payload) % 2:
        raise LinkProtocolError("VERSIONS cell has an odd length")
    return tuple(v for (v,) in struct.iter_unpack(">H", payload))


def choose_link_version(
    theirs: Iterable[int], ours: Iterable[int] = SUPPORTED_LINK_VERSIONS
) -> int:
    """Highest common version (§4.1)."""
    common = set(theirs) & set(ours)
    if not common:
        raise LinkProtocolError(f"no common link protocol version (relay offers {set(theirs)})")
    return max(common)


# ---- NETINFO (§4.4) -------------------------------------------------------------------------

_ATYPE_IPV4 = 0x04
_ATYPE_IPV6 = 0x06


@dataclass(frozen=True)
class Netinfo:
    """``timestamp`` is the sender's clock (0 from clients); unusable addresses are ``None``."""

    timestamp: int
    other_address: IPAddress | None
    my_addresses: tuple[IPAddress, ...] = ()


def _encode_address(address: IPAddress | None) -> bytes:
    if address is None:
        return bytes([_ATYPE_IPV4, 4]) + bytes(4)
    atype = _ATYPE_IPV4 if address.version == 4 else _ATYPE_IPV6
    return bytes([atype, len(address.packed)]) + address.packed


def encode_netinfo(info: Netinfo) -> bytes:
    """NETINFO payload (unpadded; :func:`encode_cell` pads it)."""
    parts = [struct.pack(">I", info.timestamp), _encode_address(info.other_address)]
    parts.append(bytes([len(info.my_addresses)]))
    parts.extend(_encode_address(a) for a in info.my_addresses)
    return b"".join(parts)


def _decode_address(payload: bytes, offset: int) -> tuple[IPAddress | None, int]:
    if offset + 2 > len(payload):
        raise LinkProtocolError("NETINFO cell truncated")
    atype, alen = payload[offset], payload[offset + 1]
    end = offset + 2 + alen
    if end > len(payload):
        raise LinkProtocolError("NETINFO cell truncated")
    value = payload[offset + 2 : end]
    address: IPAddress | None = None
    if atype == _ATYPE_IPV4 and alen == 4:
        address = ipaddress.IPv4Address(value)
    elif atype == _ATYPE_IPV6 and alen == 16:
        address = ipaddress.IPv6Address(value)
    return address, end


def decode_netinfo(payload: bytes) -> Netinfo:
    """Parse NETINFO; addresses of unknown type or wrong length are skipped (§4.4)."""
    if len(payload) < 4:
        raise LinkProtocolError("NETINFO cell truncated")
    (timestamp,) = struct.unpack_from(">I", payload)
    other, offset = _decode_address(payload, 4)
    if offset >= len(payload):
        raise LinkProtocolError("NETINFO cell truncated")
    count = payload[offset]
    offset += 1
    mine: list[IPAddress] = []
    for _ in range(count):
        address, offset = _decode_address(payload, offset)
        if address is not None:
            mine.append(address)
    return Netinfo(timestamp, other, tuple(mine))


# ---- DESTROY (§9) ---------------------------------------------------------------------------


def destroy_cell(circ_id: int, reason: int = DestroyReason.NONE) -> Cell:
    return Cell(circ_id, CellCommand.DESTROY, bytes([reason]))


def decode_destroy(payload: bytes) -> int:
    """The reason code; an empty payload counts as NONE."""
    return payload[0] if payload else DestroyReason.NONE


# ---- RELAY payload (§7.1) -------------------------------------------------------------------


class RelayCell(NamedTuple):
    """A relay message: what is left of the 509-byte payload once decrypted and checked. (A
    named tuple: one is made per relay cell.)"""

    command: int
    stream_id: int
    data: bytes = b""


def _zero_padding(size: int) -> bytes:
    return bytes(size)


def encode_relay_payload(cell: RelayCell, padding: Callable[[int], bytes] = _zero_padding) -> bytes:
    """509 bytes with Recognized = 0 and Digest = 0, ready for the digest (§7.3 step 1).

    tor pads with 4 zero bytes then random bytes; pass ``padding=os.urandom`` for that. The
    first 4 padding bytes are zero whatever ``padding`` returns.
    """
    if len(cell.data) > MAX_RELAY_DATA:
        raise LocalProtocolError(f"relay data longer than {MAX_RELAY_DATA} bytes")
    if not 0 <= cell.stream_id <= 0xFFFF:
        raise LocalProtocolError("stream id does not fit 2 bytes")
    head = struct.pack(">BHHIH", cell.command, 0, cell.stream_id, 0, len(cell.data))
    pad_len = MAX_RELAY_DATA - len(cell.data)
    zeros = min(4, pad_len)
    pad = bytes(zeros) + padding(pad_len - zeros)
    return head + cell.data + pad


def relay_recognized(payload: bytes) -> int:
    return int.from_bytes(payload[1:3], "big")


def relay_digest_field(payload: bytes) -> bytes:
    return payload[5:9]


def with_digest(payload: bytes, digest: bytes) -> bytes:
    """The payload with its 4-byte Digest field replaced (zeroed when ``digest`` is 0s)."""
    return payload[:5] + digest[:4] + payload[9:]


def decode_relay_payload(payload: bytes) -> RelayCell:
    """Parse a recognized relay payload; ``Length`` above 498 is a protocol error (§7.1)."""
    if len(payload) != PAYLOAD_LEN:
        raise LinkProtocolError("relay payload is not 509 bytes")
    command, _recognized, stream_id, _digest, length = _RELAY_HEADER.unpack_from(payload)
    if length > MAX_RELAY_DATA:
        raise LinkProtocolError(f"relay cell length {length} exceeds {MAX_RELAY_DATA}")
    data = payload[RELAY_HEADER_LEN : RELAY_HEADER_LEN + length]
    return RelayCell(command, stream_id, data)
