"""link.cells: cell framing, VERSIONS, NETINFO, DESTROY, relay payloads (tor-link.md §3, §4, §7.1, §9)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webtunnel_pt.errors import LinkProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import (
    MAX_RELAY_DATA,
    PAYLOAD_LEN,
    Cell,
    CellCommand,
    CellParser,
    DestroyReason,
    Netinfo,
    RelayCell,
    RelayCommand,
    choose_link_version,
    decode_destroy,
    decode_netinfo,
    decode_relay_payload,
    decode_versions,
    destroy_cell,
    encode_cell,
    encode_netinfo,
    encode_relay_payload,
    is_variable_length,
    reason_name,
    versions_cell,
)

VERSIONS_BYTES = bytes.fromhex("0000 07 0006 0003 0004 0005")


def parse_all(data: bytes, link_version: int | None = None, step: int | None = None) -> list[Cell]:
    parser = CellParser()
    parser.link_version = link_version
    cells = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        parser.receive_data(chunk)
        while (cell := parser.next_cell()) is not None:
            cells.append(cell)
    assert parser.buffered == 0
    return cells


# -- VERSIONS (§4.1) -------------------------------------------------------------------------


def test_versions_cell_is_what_tor_sends() -> None:
    assert encode_cell(versions_cell(), None) == VERSIONS_BYTES


def test_versions_cell_parses_back_byte_by_byte() -> None:
    (cell,) = parse_all(VERSIONS_BYTES, step=1)
    assert cell == Cell(0, CellCommand.VERSIONS, bytes.fromhex("000300040005"))
    assert decode_versions(cell.payload) == (3, 4, 5)


def test_odd_versions_payload_is_refused() -> None:
    with pytest.raises(LinkProtocolError):
        decode_versions(b"\x00\x03\x00")


@pytest.mark.parametrize(
    ("theirs", "chosen"), [((3, 4, 5), 5), ((1, 2, 3, 4), 4), ((3,), 3), ((5, 6, 7), 5)]
)
def test_highest_common_version(theirs: tuple[int, ...], chosen: int) -> None:
    assert choose_link_version(theirs) == chosen


def test_no_common_version() -> None:
    with pytest.raises(LinkProtocolError, match="no common"):
        choose_link_version((1, 2))


# -- framing (§3) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("link", "size"), [(None, 512), (3, 512), (4, 514), (5, 514)])
def test_fixed_cell_size_follows_link_version(link: int | None, size: int) -> None:
    wire = encode_cell(Cell(0x1234, CellCommand.CREATE_FAST, b"x" * 20), link)
    assert len(wire) == size
    assert wire[-PAYLOAD_LEN + 20 :] == bytes(PAYLOAD_LEN - 20)  # NUL padding


def test_fixed_cell_bytes_link5() -> None:
    wire = encode_cell(destroy_cell(0x80000001, DestroyReason.FINISHED), 5)
    assert wire[:6] == bytes.fromhex("80000001 04 09")
    assert parse_all(wire, 5) == [Cell(0x80000001, CellCommand.DESTROY, b"\x09" + bytes(508))]


def test_variable_cell_bytes_link4() -> None:
    wire = encode_cell(Cell(0, CellCommand.VPADDING, b"abc"), 4)
    assert wire == bytes.fromhex("00000000 80 0003") + b"abc"


def test_circuit_id_must_fit() -> None:
    with pytest.raises(LocalProtocolError):
        encode_cell(Cell(0x10000, CellCommand.PADDING, b""), 3)
    with pytest.raises(LocalProtocolError):
        encode_cell(Cell(1, CellCommand.PADDING, bytes(510)), 4)


def test_parser_switches_circ_id_length_after_versions() -> None:
    """VERSIONS always has 2-byte ids; the cells behind it in the same read have 4."""
    certs = encode_cell(Cell(0, CellCommand.CERTS, b"\x00"), 5)
    padding = encode_cell(Cell(0, CellCommand.PADDING, b""), 5)
    parser = CellParser()
    parser.receive_data(VERSIONS_BYTES + certs + padding)
    assert parser.next_cell() == Cell(0, 7, bytes.fromhex("000300040005"))
    parser.link_version = 5
    assert parser.next_cell() == Cell(0, CellCommand.CERTS, b"\x00")
    assert parser.next_cell() == Cell(0, CellCommand.PADDING, bytes(PAYLOAD_LEN))
    assert parser.next_cell() is None


def test_command_classes() -> None:
    assert is_variable_length(7) and is_variable_length(128) and is_variable_length(200)
    assert not is_variable_length(0) and not is_variable_length(9) and not is_variable_length(127)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFFFFFF),
            st.sampled_from([0, 3, 4, 5, 6, 8, 9, 128, 129, 130, 200]),
            st.binary(max_size=600),
        ),
        max_size=5,
    ),
    st.integers(1, 700),
)
def test_roundtrip_any_split(cells: list[tuple[int, int, bytes]], step: int) -> None:
    built = []
    for circ_id, command, payload in cells:
        if not is_variable_length(command):
            payload = payload[:PAYLOAD_LEN]
        built.append(Cell(circ_id, command, payload))
    wire = b"".join(encode_cell(c, 4) for c in built)
    expected = [
        c
        if is_variable_length(c.command)
        else Cell(c.circ_id, c.command, c.payload.ljust(509, b"\0"))
        for c in built
    ]
    assert parse_all(wire, 4, step) == expected


# -- NETINFO (§4.4) --------------------------------------------------------------------------


def test_client_netinfo_example_bytes() -> None:
    payload = encode_netinfo(Netinfo(0, ipaddress.IPv4Address("127.0.0.1")))
    assert payload == bytes.fromhex("00000000 04 04 7f000001 00")
    wire = encode_cell(Cell(0, CellCommand.NETINFO, payload), 5)
    assert wire[5:] == payload + bytes(498)


def test_relay_netinfo_parses() -> None:
    payload = bytes.fromhex("6553f100 04 04 c0000201 02 04 04 7f000001 06 10") + bytes(15) + b"\x01"
    info = decode_netinfo(payload + bytes(100))
    assert info.timestamp == 0x6553F100
    assert info.other_address == ipaddress.IPv4Address("192.0.2.1")
    assert info.my_addresses == (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def test_netinfo_wrong_alen_is_ignored_not_fatal() -> None:
    payload = bytes.fromhex("00000001 04 03 010203 01 06 04 01020304")
    info = decode_netinfo(payload)
    assert info.other_address is None and info.my_addresses == ()


def test_netinfo_truncated() -> None:
    with pytest.raises(LinkProtocolError):
        decode_netinfo(bytes.fromhex("00000001 04 04 0102"))


def test_netinfo_roundtrip_ipv6() -> None:
    info = Netinfo(7, ipaddress.IPv6Address("2001:db8::1"), (ipaddress.IPv4Address("10.0.0.1"),))
    assert decode_netinfo(encode_netinfo(info)) == info


# -- DESTROY (§9) ----------------------------------------------------------------------------


def test_destroy_reason() -> None:
    assert decode_destroy(destroy_cell(5, DestroyReason.PROTOCOL).payload) == 1
    assert decode_destroy(b"") == DestroyReason.NONE
    assert reason_name(DestroyReason, 9) == "FINISHED (9)"
    assert reason_name(DestroyReason, 99) == "99"


# -- relay payload (§7.1) --------------------------------------------------------------------


def test_relay_payload_layout() -> None:
    payload = encode_relay_payload(RelayCell(RelayCommand.BEGIN_DIR, 1), lambda n: b"\xaa" * n)
    assert len(payload) == PAYLOAD_LEN
    assert payload[:11] == bytes.fromhex("0d 0000 0001 00000000 0000")
    assert payload[11:15] == bytes(4)  # first 4 padding bytes are zero
    assert payload[15:] == b"\xaa" * (PAYLOAD_LEN - 15)
    assert decode_relay_payload(payload) == RelayCell(RelayCommand.BEGIN_DIR, 1, b"")


def test_relay_payload_full_data() -> None:
    data = bytes(range(256)) + bytes(242)
    payload = encode_relay_payload(RelayCell(RelayCommand.DATA, 0xBEEF, data))
    assert payload[9:11] == bytes.fromhex("01f2")
    assert decode_relay_payload(payload).data == data


def test_relay_payload_bounds() -> None:
    with pytest.raises(LocalProtocolError):
        encode_relay_payload(RelayCell(RelayCommand.DATA, 1, bytes(MAX_RELAY_DATA + 1)))
    bad = bytearray(encode_relay_payload(RelayCell(RelayCommand.DATA, 1, b"x")))
    bad[9:11] = (499).to_bytes(2, "big")
    with pytest.raises(LinkProtocolError):
        decode_relay_payload(bytes(bad))


# ---- take_cells: the channel's batch parse --------------------------------------------------

_CELLS = st.lists(
    st.one_of(
        st.builds(
            Cell,
            st.integers(0, 2**32 - 1),
            st.sampled_from([CellCommand.RELAY, CellCommand.DESTROY, CellCommand.PADDING]),
            st.binary(max_size=PAYLOAD_LEN),
        ),
        st.builds(
            Cell,
            st.integers(0, 2**32 - 1),
            st.sampled_from([CellCommand.VPADDING, CellCommand.CERTS]),
            st.binary(max_size=1200),
        ),
    ),
    max_size=12,
)


@given(_CELLS, st.lists(st.integers(1, 3000), max_size=12))
def test_take_cells_is_next_cell_in_one_pass(sent: list[Cell], cuts: list[int]) -> None:
    """Whatever the read boundaries, the batch parse yields exactly the cells next_cell
    yields, in order, and keeps a partial cell for the next read."""
    wire = b"".join(encode_cell(cell, 5) for cell in sent)
    one, batch = CellParser(), CellParser()
    one.link_version = batch.link_version = 5
    by_one: list[Cell] = []
    by_batch: list[Cell] = []
    offset = 0
    for cut in [*cuts, len(wire)]:
        chunk, offset = wire[offset : offset + cut], offset + cut
        one.receive_data(chunk)
        batch.receive_data(chunk)
        while (cell := one.next_cell()) is not None:
            by_one.append(cell)
        by_batch.extend(batch.take_cells())
        assert batch.buffered == one.buffered
    by_batch.extend(batch.take_cells())
    expected = [cell if is_variable_length(cell.command) else _padded(cell) for cell in sent]
    assert by_batch == by_one == expected


def _padded(cell: Cell) -> Cell:
    return Cell(cell.circ_id, cell.command, cell.payload.ljust(PAYLOAD_LEN, b"\0"))


def test_take_cells_needs_the_link_version() -> None:
    with pytest.raises(LocalProtocolError, match="link version"):
        CellParser().take_cells()
