"""The extension list carried in ntor v3 messages, and the congestion-control extensions of
prop 324 §10.3 (tor-spec "ntor-v3 handshake" extension encoding; prop 332 A.2, prop 358).

    msg = encode_extensions([(EXT_CC_REQUEST, b"")])      # == cc_request()
    decode_extensions(msg)                                 # [(1, b"")]
    sendme_inc = parse_cc_response(hs.server_message)      # 31, or None: the exit did not agree
    check_sendme_inc(sendme_inc, view.param("cc_sendme_inc"))

Wire format::

    N_EXTENSIONS        [1 byte]
    N_EXTENSIONS times:
      EXT_FIELD_TYPE    [1 byte]
      EXT_FIELD_LEN     [1 byte]
      EXT_FIELD         [EXT_FIELD_LEN bytes]

Extension types (client to relay, and back): ``01`` congestion-control request (empty body),
``02`` congestion-control response (body: ``sendme_inc`` [1 byte]). Unknown types are kept by
:func:`decode_extensions` and ignored by :func:`parse_cc_response`; of a repeated type the first
counts. A list that is truncated or has bytes after its last extension is malformed:
:class:`~webtunnel_pt.errors.CircuitProtocolError`. tor always sends a list, even an empty one
(``00``), and refuses an empty ntor v3 message: :data:`NO_EXTENSIONS` is what to send for
"nothing to ask".

Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError

__all__ = [
    "EXT_CC_REQUEST",
    "EXT_CC_RESPONSE",
    "NO_EXTENSIONS",
    "cc_request",
    "check_sendme_inc",
    "decode_extensions",
    "encode_extensions",
    "parse_cc_response",
]

#: Congestion-control request, client to exit; empty body (prop 324 §10.3).
EXT_CC_REQUEST = 0x01
#: Congestion-control response, exit to client; body ``sendme_inc`` [1 byte].
EXT_CC_RESPONSE = 0x02
#: An extension list with no extensions: the ntor v3 message when there is nothing to ask.
NO_EXTENSIONS = b"\x00"
#: tor accepts the exit's sendme_inc only within this distance of its consensus cc_sendme_inc
#: (``congestion_control_validate_sendme_increment``; the spec allows a factor of 2).
SENDME_INC_TOLERANCE = 1
_MAX_COUNT = 0xFF
_MAX_FIELD = 0xFF


def encode_extensions(exts: Sequence[tuple[int, bytes]]) -> bytes:
    """``N_EXTENSIONS`` then each ``TYPE | LEN | BODY``, in the order given."""
    if len(exts) > _MAX_COUNT:
        raise LocalProtocolError(f"at most {_MAX_COUNT} handshake extensions fit")
    out = bytearray([len(exts)])
    for ext_type, body in exts:
        if not 0 <= ext_type <= 0xFF:
            raise LocalProtocolError(f"handshake extension type {ext_type} is not one byte")
        if len(body) > _MAX_FIELD:
            raise LocalProtocolError(f"handshake extension body of {len(body)} B exceeds 255")
        out += bytes([ext_type, len(body)]) + body
    return bytes(out)


def decode_extensions(data: bytes) -> list[tuple[int, bytes]]:
    """The ``(type, body)`` pairs of an extension list, in wire order, duplicates included.

    Raises :class:`CircuitProtocolError` if the list is empty, truncated, or followed by
    bytes."""
    if not data:
        raise CircuitProtocolError("handshake extensions: empty message, no N_EXTENSIONS")
    count, pos, out = data[0], 1, []
    for index in range(count):
        if pos + 2 > len(data):
            raise CircuitProtocolError(f"handshake extension {index} of {count}: header truncated")
        ext_type, length = data[pos], data[pos + 1]
        pos += 2
        if pos + length > len(data):
            raise CircuitProtocolError(
                f"handshake extension {index} (type {ext_type}): {length} B body truncated"
            )
        out.append((ext_type, bytes(data[pos : pos + length])))
        pos += length
    if pos != len(data):
        raise CircuitProtocolError(
            f"handshake extensions: {len(data) - pos} B after the {count} extensions"
        )
    return out


def cc_request() -> bytes:
    """The client message asking the exit for congestion control: one empty ``01``."""
    return encode_extensions([(EXT_CC_REQUEST, b"")])


def parse_cc_response(server_message: bytes) -> int | None:
    """The exit's ``sendme_inc`` from the first ``02`` extension of its message, or None if it
    has none (the exit did not agree to congestion control).

    Raises :class:`CircuitProtocolError` if the list is malformed or the response has no body
    or a zero sendme_inc. Bytes after the first of the body are ignored, as tor does."""
    for ext_type, body in decode_extensions(server_message):
        if ext_type != EXT_CC_RESPONSE:
            continue
        if not body:
            raise CircuitProtocolError("congestion-control response without its sendme_inc")
        if body[0] == 0:
            raise CircuitProtocolError("congestion-control response with sendme_inc 0")
        return body[0]
    return None


def check_sendme_inc(sendme_inc: int, consensus_sendme_inc: int) -> None:
    """Refuse an exit's sendme_inc that differs from the consensus ``cc_sendme_inc`` by more
    than :data:`SENDME_INC_TOLERANCE` (as tor does): :class:`CircuitProtocolError`."""
    if abs(sendme_inc - consensus_sendme_inc) > SENDME_INC_TOLERANCE:
        raise CircuitProtocolError(
            f"the exit's sendme_inc {sendme_inc} is not within {SENDME_INC_TOLERANCE} of the "
            f"consensus cc_sendme_inc {consensus_sendme_inc}"
        )
