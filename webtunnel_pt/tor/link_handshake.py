"""Client side of the in-protocol (v3) link handshake as a state machine (tor-link.md §4).

    SEND_VERSIONS ─> AWAIT_VERSIONS ─> AWAIT_CERTS ─> AWAIT_NETINFO ─> OPEN
                                       (CERTS verified   (AUTH_CHALLENGE read,
                                        on arrival)       our NETINFO queued)

Vocabulary of the other cores: :meth:`data_to_send`, :meth:`receive_data`,
:meth:`next_event`. The one event is :class:`LinkOpen`; it hands on the cell parser, which
may already hold cells that followed the relay's NETINFO. PADDING and VPADDING are ignored in
every state; any other unexpected cell raises :class:`LinkProtocolError`.

Sans-I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from webtunnel_pt.errors import LinkProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import (
    MIN_LINK_VERSION,
    SUPPORTED_LINK_VERSIONS,
    Cell,
    CellCommand,
    CellParser,
    IPAddress,
    Netinfo,
    choose_link_version,
    decode_netinfo,
    decode_versions,
    encode_cell,
    encode_netinfo,
    versions_cell,
)
from webtunnel_pt.tor.certs import RelayIdentity, parse_certs_cell, verify_certs

_IGNORED = frozenset({CellCommand.PADDING, CellCommand.VPADDING})


class HandshakeState(Enum):
    AWAIT_VERSIONS = auto()
    AWAIT_CERTS = auto()
    AWAIT_NETINFO = auto()
    OPEN = auto()


#: Which commands each state accepts; everything else (bar padding) is a protocol error.
_EXPECTED: dict[HandshakeState, frozenset[int]] = {
    HandshakeState.AWAIT_VERSIONS: frozenset({CellCommand.VERSIONS}),
    HandshakeState.AWAIT_CERTS: frozenset({CellCommand.CERTS}),
    HandshakeState.AWAIT_NETINFO: frozenset({CellCommand.AUTH_CHALLENGE, CellCommand.NETINFO}),
    HandshakeState.OPEN: frozenset(),
}


@dataclass(frozen=True)
class LinkOpen:
    """The link is open: the relay is who the bridge line says, NETINFO exchanged."""

    link_version: int
    identity: RelayIdentity
    relay_netinfo: Netinfo
    auth_methods: tuple[int, ...]
    parser: CellParser
    certs_payload: bytes

    def clock_skew(self, now: float) -> float | None:
        """Relay clock minus ours in seconds, if the relay told its time (§4.4)."""
        if not self.relay_netinfo.timestamp:
            return None
        return self.relay_netinfo.timestamp - now


def _auth_methods(payload: bytes) -> tuple[int, ...]:
    """AUTH_CHALLENGE: ``Challenge [32] | N [2] | Methods [2 x N]`` (§4.3); read, not used."""
    if len(payload) < 34:
        raise LinkProtocolError("AUTH_CHALLENGE cell truncated")
    count = int.from_bytes(payload[32:34], "big")
    body = payload[34 : 34 + 2 * count]
    if len(body) != 2 * count:
        raise LinkProtocolError("AUTH_CHALLENGE cell truncated")
    return tuple(int.from_bytes(body[i : i + 2], "big") for i in range(0, len(body), 2))


class ClientHandshake:
    """Run the link handshake for a client that does not authenticate itself.

    ``tls_leaf_der`` is the relay's TLS certificate as presented; ``expected_fingerprint``
    the bridge line's (``None`` accepts any valid identity, for tools only); ``peer_address``
    goes into our NETINFO (§4.4); ``clock`` returns epoch seconds for certificate expiry.
    """

    def __init__(
        self,
        *,
        tls_leaf_der: bytes,
        expected_fingerprint: str | None,
        clock: Callable[[], float],
        peer_address: IPAddress | None = None,
        versions: tuple[int, ...] = SUPPORTED_LINK_VERSIONS,
    ) -> None:
        self._tls_leaf_der = tls_leaf_der
        self._expected = expected_fingerprint
        self._clock = clock
        self._peer_address = peer_address or ipaddress.IPv4Address(0)
        self._versions = versions
        self._parser = CellParser()
        self._outgoing = encode_cell(versions_cell(versions), None)
        self.state = HandshakeState.AWAIT_VERSIONS
        self.link_version: int | None = None
        self.identity: RelayIdentity | None = None
        #: The raw CERTS payload, kept for diagnostics and test captures.
        self.certs_payload: bytes | None = None
        self._auth_methods: tuple[int, ...] | None = None
        self._result: LinkOpen | None = None

    def data_to_send(self) -> bytes:
        out, self._outgoing = self._outgoing, b""
        return out

    def receive_data(self, data: bytes) -> None:
        if self._result is not None:
            raise LocalProtocolError("handshake is over; cells belong to the channel")
        self._parser.receive_data(data)

    def next_event(self) -> LinkOpen | None:
        """:class:`LinkOpen` once done, ``None`` when more bytes are needed; raises on error."""
        while self._result is None:
            cell = self._parser.next_cell()
            if cell is None:
                return None
            self._handle(cell)
        return self._result

    def _handle(self, cell: Cell) -> None:
        if cell.command in _IGNORED:
            return
        if cell.command not in _EXPECTED[self.state]:
            raise LinkProtocolError(
                f"unexpected cell command {cell.command} in state {self.state.name}"
            )
        if self.state is not HandshakeState.AWAIT_VERSIONS and cell.circ_id != 0:
            raise LinkProtocolError("link-level cell with a non-zero circuit id")
        if cell.command == CellCommand.VERSIONS:
            self._on_versions(cell.payload)
        elif cell.command == CellCommand.CERTS:
            self._on_certs(cell.payload)
        elif cell.command == CellCommand.AUTH_CHALLENGE:
            if self._auth_methods is not None:
                raise LinkProtocolError("second AUTH_CHALLENGE cell in one handshake (§4.3)")
            self._auth_methods = _auth_methods(cell.payload)
        else:
            self._on_netinfo(cell.payload)

    def _on_versions(self, payload: bytes) -> None:
        self.link_version = choose_link_version(decode_versions(payload), self._versions)
        if self.link_version < MIN_LINK_VERSION:
            raise LinkProtocolError(
                f"relay's highest common link protocol is {self.link_version}; "
                f"this client needs {MIN_LINK_VERSION} or newer"
            )
        self._parser.link_version = self.link_version
        self.state = HandshakeState.AWAIT_CERTS

    def _on_certs(self, payload: bytes) -> None:
        self.certs_payload = payload
        self.identity = verify_certs(
            parse_certs_cell(payload),
            tls_leaf_der=self._tls_leaf_der,
            expected_fingerprint=self._expected,
            now=self._clock(),
        )
        self.state = HandshakeState.AWAIT_NETINFO

    def _on_netinfo(self, payload: bytes) -> None:
        relay_info = decode_netinfo(payload)
        ours = Netinfo(0, self._peer_address, ())
        self._outgoing += encode_cell(
            Cell(0, CellCommand.NETINFO, encode_netinfo(ours)), self.link_version
        )
        if self.link_version is None or self.identity is None or self.certs_payload is None:
            raise LocalProtocolError("NETINFO accepted before VERSIONS and CERTS")  # unreachable
        self.state = HandshakeState.OPEN
        self._result = LinkOpen(
            self.link_version,
            self.identity,
            relay_info,
            self._auth_methods or (),
            self._parser,
            self.certs_payload,
        )
