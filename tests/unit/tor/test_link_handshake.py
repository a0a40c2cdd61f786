"""link.handshake: the client link handshake as a state machine (tor-link.md §4), fed the CERTS
cell captured from a real tor bridge."""

from __future__ import annotations

import ipaddress

import pytest

from tests.support.link_capture import CAPTURED_AT, CERTS_CELL, FINGERPRINT, TLS_LEAF_DER
from webtunnel_pt.errors import (
    IdentityMismatch,
    LinkCertMismatch,
    LinkProtocolError,
    LocalProtocolError,
)
from webtunnel_pt.tor.cells import (
    Cell,
    CellCommand,
    CellParser,
    Netinfo,
    decode_netinfo,
    encode_cell,
    encode_netinfo,
    versions_cell,
)
from webtunnel_pt.tor.link_handshake import ClientHandshake, HandshakeState, LinkOpen

RELAY_TIME = int(CAPTURED_AT) + 3
AUTH_CHALLENGE = bytes(32) + bytes.fromhex("0001 0003")


def relay_bytes(
    link: int = 5, *, versions: tuple[int, ...] = (3, 4, 5), extra: bytes = b""
) -> bytes:
    relay_netinfo = Netinfo(
        RELAY_TIME, ipaddress.IPv4Address("127.0.0.1"), (ipaddress.IPv4Address("127.0.0.2"),)
    )
    return b"".join(
        [
            encode_cell(versions_cell(versions), None),
            encode_cell(Cell(0, CellCommand.VPADDING, b"pad"), link),
            encode_cell(Cell(0, CellCommand.CERTS, CERTS_CELL), link),
            encode_cell(Cell(0, CellCommand.AUTH_CHALLENGE, AUTH_CHALLENGE), link),
            encode_cell(Cell(0, CellCommand.PADDING, b""), link),
            encode_cell(Cell(0, CellCommand.NETINFO, encode_netinfo(relay_netinfo)), link),
            extra,
        ]
    )


def handshake(fingerprint: str | None = FINGERPRINT, leaf: bytes = TLS_LEAF_DER) -> ClientHandshake:
    return ClientHandshake(
        tls_leaf_der=leaf,
        expected_fingerprint=fingerprint,
        clock=lambda: CAPTURED_AT,
        peer_address=ipaddress.IPv6Address("2001:db8::1"),
    )


def run(hs: ClientHandshake, data: bytes, step: int | None = None) -> LinkOpen:
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    event = None
    for chunk in chunks:
        hs.receive_data(chunk)
        event = hs.next_event()
    assert event is not None
    return event


def test_sends_versions_first() -> None:
    hs = handshake()
    assert hs.data_to_send() == bytes.fromhex("0000 07 0006 0003 0004 0005")
    assert hs.data_to_send() == b""


@pytest.mark.parametrize("step", [None, 1, 7, 514])
def test_full_handshake(step: int | None) -> None:
    hs = handshake()
    hs.data_to_send()
    link = run(hs, relay_bytes(), step)
    assert hs.state is HandshakeState.OPEN
    assert link.link_version == 5
    assert link.identity.rsa_fingerprint == FINGERPRINT
    assert link.auth_methods == (3,)
    assert link.certs_payload == CERTS_CELL
    assert link.relay_netinfo.timestamp == RELAY_TIME
    assert link.clock_skew(CAPTURED_AT) == 3
    # our NETINFO: link-5 framing, time 0, the peer address we were given, no own address
    out = hs.data_to_send()
    parser = CellParser()
    parser.link_version = 5
    parser.receive_data(out)
    cell = parser.next_cell()
    assert cell is not None and cell.command == CellCommand.NETINFO and cell.circ_id == 0
    assert decode_netinfo(cell.payload) == Netinfo(0, ipaddress.IPv6Address("2001:db8::1"), ())
    assert parser.next_cell() is None


def test_cells_after_netinfo_stay_in_the_parser() -> None:
    hs = handshake()
    created = encode_cell(Cell(0x80000001, CellCommand.CREATED_FAST, bytes(40)), 5)
    link = run(hs, relay_bytes(extra=created))
    assert link.parser.next_cell() == Cell(0x80000001, CellCommand.CREATED_FAST, bytes(509))
    with pytest.raises(LocalProtocolError):
        hs.receive_data(b"more")


def test_a_relay_that_only_agrees_on_link_version_3_is_refused() -> None:
    hs = handshake()
    hs.receive_data(relay_bytes(3, versions=(3,)))
    with pytest.raises(LinkProtocolError, match="link protocol is 3"):
        hs.next_event()


def test_the_highest_common_version_is_chosen() -> None:
    hs = handshake()
    hs.data_to_send()
    link = run(hs, relay_bytes(4, versions=(2, 3, 4)))
    assert link.link_version == 4
    assert len(hs.data_to_send()) == 514  # NETINFO with a 4-byte circuit id


def test_wrong_fingerprint_fails_at_certs() -> None:
    hs = handshake(fingerprint="0" * 40)
    hs.receive_data(relay_bytes())
    with pytest.raises(IdentityMismatch):
        hs.next_event()
    assert hs.state is HandshakeState.AWAIT_CERTS


def test_other_tls_certificate_fails() -> None:
    hs = handshake(leaf=TLS_LEAF_DER[:-1] + bytes([TLS_LEAF_DER[-1] ^ 1]))
    hs.receive_data(relay_bytes())
    with pytest.raises(LinkCertMismatch):
        hs.next_event()


def test_netinfo_before_certs_is_a_protocol_error() -> None:
    hs = handshake()
    hs.receive_data(encode_cell(versions_cell(), None))
    hs.receive_data(encode_cell(Cell(0, CellCommand.NETINFO, bytes(10)), 5))
    with pytest.raises(LinkProtocolError, match="AWAIT_CERTS"):
        hs.next_event()


def test_certs_on_a_circuit_is_a_protocol_error() -> None:
    hs = handshake()
    hs.receive_data(encode_cell(versions_cell(), None))
    hs.receive_data(encode_cell(Cell(5, CellCommand.CERTS, CERTS_CELL), 5))
    with pytest.raises(LinkProtocolError, match="non-zero circuit"):
        hs.next_event()


def test_no_common_version() -> None:
    hs = handshake()
    hs.receive_data(encode_cell(versions_cell((1, 2)), None))
    with pytest.raises(LinkProtocolError, match="no common"):
        hs.next_event()


def test_second_auth_challenge_is_a_protocol_error() -> None:
    """tor-spec §4.3 / tor's channeltls: one AUTH_CHALLENGE per handshake ("We already
    received one" closes the connection)."""
    hs = handshake()
    twice = relay_bytes().replace(
        encode_cell(Cell(0, CellCommand.AUTH_CHALLENGE, AUTH_CHALLENGE), 5),
        encode_cell(Cell(0, CellCommand.AUTH_CHALLENGE, AUTH_CHALLENGE), 5) * 2,
    )
    hs.receive_data(twice)
    with pytest.raises(LinkProtocolError, match="AUTH_CHALLENGE"):
        hs.next_event()
