"""Coverage-guided fuzz targets (atheris), one per parser.

    python -m fuzz.targets <name> [-max_total_time=60] [corpus_dir]

Each target feeds arbitrary bytes to a sans-I/O core. Anything but the package's own
``WebtunnelError`` subclasses escaping is a finding: atheris stops and prints the input.
``make fuzz`` runs every target for FUZZ_SECONDS each.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from webtunnel_pt.errors import WebtunnelError
    from webtunnel_pt.outbound import proxy, proxy_uri
    from webtunnel_pt.pt import args as pt_args
    from webtunnel_pt.pt import env as pt_env
    from webtunnel_pt.socks import codes as socks_codes
    from webtunnel_pt.socks import server as socks
    from webtunnel_pt.tor import (
        authorities,
        cells,
        certs,
        consensus,
        descriptor_sig,
        directory,
        handshake_ext,
        keycert,
        linkspec,
        microdesc,
        netdoc,
        ntor,
        ntor_v3,
        relay_msgs,
    )
    from webtunnel_pt.tor.circuit import Circuit, CircuitClosed, StreamData
    from webtunnel_pt.tor.kdf import kdf_tor
    from webtunnel_pt.tor.onionskin import HopKeys
    from webtunnel_pt.tor.relay_crypto import RelayCrypto
    from webtunnel_pt.webtunnel import bridge, upgrade


def fuzz_args(data: bytes) -> None:
    try:
        args = pt_args.parse_args(data.decode("utf-8", "surrogatepass"))
    except (WebtunnelError, UnicodeDecodeError):
        return
    # Round trip: whatever parses re-encodes to something that parses to the same pairs.
    pairs = args.pairs()
    if all("=" not in k for k, _ in pairs):
        assert pt_args.parse_args(pt_args.escape_args(pairs)).pairs() == pairs


def fuzz_socks(data: bytes) -> None:
    """The server core as the PT runs it: credentials checked, then decoded from the request."""
    handshake = socks.SocksServerHandshake(pt_args.check_bridge_credentials)
    try:
        for i in range(0, len(data), 7):  # split reads, like a slow client
            handshake.receive_data(data[i : i + 7])
            request = handshake.next_event()
            if request is not None:
                pt_args.bridge_args(request)
                handshake.reply(socks_codes.SocksReply.SUCCEEDED)
                return
    except WebtunnelError:
        pass


def fuzz_upgrade(data: bytes) -> None:
    client = upgrade.UpgradeClient("bridge.example", "/path")
    client.data_to_send()
    try:
        client.receive_data(data)
        client.receive_eof()
        event = client.next_event()
    except WebtunnelError:
        return
    assert event is not None and data.endswith(event.trailing_data)


def fuzz_bridge(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        line = bridge.parse_bridge_line(text)
        bridge.bridge_config_from_args(line.args)
    except WebtunnelError:
        pass
    try:
        bridge.bridge_config_from_args(pt_args.BridgeArgs([("url", text)]))
    except WebtunnelError:
        pass


def fuzz_env(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    keys = [
        "TOR_PT_MANAGED_TRANSPORT_VER",
        "TOR_PT_CLIENT_TRANSPORTS",
        "TOR_PT_STATE_LOCATION",
        "TOR_PT_EXIT_ON_STDIN_CLOSE",
        "TOR_PT_OUTBOUND_BIND_ADDRESS_V4",
        "TOR_PT_OUTBOUND_BIND_ADDRESS_V6",
        "TOR_PT_SERVER_TRANSPORTS",
        "TOR_PT_PROXY",
    ]
    env = {key: fdp.ConsumeUnicodeNoSurrogates(40) for key in keys if fdp.ConsumeBool()}
    try:
        pt_env.negotiate_version(env)
        pt_env.parse_client_environment(env)
    except WebtunnelError:
        pass


def fuzz_proxy_uri(data: bytes) -> None:
    try:
        proxy_uri.parse_proxy_uri(data.decode("utf-8", "replace"))
    except WebtunnelError:
        pass


def fuzz_proxy_handshakes(data: bytes) -> None:
    """The three proxy clients fed an arbitrary answer from a proxy."""
    for uri in ("socks5://u:p@127.0.0.1:1080", "socks4a://127.0.0.1:1080", "http://u:p@[::1]:8080"):
        handshake = proxy.client_handshake(proxy_uri.parse_proxy_uri(uri), "bridge.example", 443)
        handshake.data_to_send()
        try:
            handshake.receive_data(data)
            handshake.next_event()
            handshake.receive_eof()
            handshake.next_event()
        except WebtunnelError:
            pass


def fuzz_cells(data: bytes) -> None:
    """Link cells, then the payload decoders each cell type leads to."""
    for version in (None, 4, 5):
        parser = cells.CellParser()
        parser.link_version = version
        try:
            parser.receive_data(data)
            while (cell := parser.next_cell()) is not None:
                for decode in (
                    cells.decode_versions,
                    cells.decode_netinfo,
                    cells.decode_destroy,
                    cells.decode_relay_payload,
                    certs.parse_certs_cell,
                ):
                    try:
                        decode(cell.payload)
                    except WebtunnelError:
                        pass
        except WebtunnelError:
            pass


def fuzz_certs(data: bytes) -> None:
    for parse in (certs.parse_ed25519_cert, certs.parse_rsa_cross_cert):
        try:
            parse(data)
        except WebtunnelError:
            pass


def fuzz_directory(data: bytes) -> None:
    try:
        directory.parse_dir_response(data)
    except WebtunnelError:
        pass
    try:
        directory.parse_server_descriptor(data)
    except WebtunnelError:
        pass
    try:
        descriptor_sig.split_signed(data)
    except WebtunnelError:
        pass


def fuzz_netdoc(data: bytes) -> None:
    try:
        items = netdoc.parse_items(data)
    except WebtunnelError:
        return
    # The items cover the input in order, but for empty lines: the offsets are what signature
    # checks hash.
    pos = 0
    for item in items:
        assert pos <= item.start < item.end
        assert data[pos : item.start].strip(b"\n") == b""
        pos = item.end
    assert data[pos:].strip(b"\n") == b""
    if items:
        netdoc.split_documents(items, items[0].keyword)


def fuzz_keycert(data: bytes) -> None:
    try:
        keycert.parse_key_certificates(data)
    except WebtunnelError:
        pass
    try:
        authorities.parse_dir_authority(data.decode("utf-8", "surrogatepass"))
    except (WebtunnelError, UnicodeDecodeError):
        pass


def fuzz_consensus(data: bytes) -> None:
    """Parse as a microdesc consensus; the header line is prepended half the time so the
    fuzzer reaches the sections behind it sooner."""
    if data[:1] == b"+":
        data = b"network-status-version 3 microdesc\n" + data[1:]
    try:
        parsed = consensus.parse_consensus(data)
    except WebtunnelError:
        return
    assert parsed.signatures and parsed.valid_after < parsed.fresh_until <= parsed.valid_until
    identities = [router.identity for router in parsed.routers]
    assert identities == sorted(set(identities))


def fuzz_microdesc(data: bytes) -> None:
    """Parse as a microdescriptor response wanting the digest of the whole input (so a lone
    microdescriptor is kept); whatever is kept must carry a wanted digest."""
    wanted = {hashlib.sha256(data).digest()}
    try:
        batch = microdesc.parse_microdescs(data, wanted)
    except WebtunnelError:
        return
    assert all(md.digest in wanted for md in batch.microdescs)
    try:
        microdesc.parse_microdesc(data)
    except WebtunnelError:
        pass


#: A fixed client ntor handshake whose reply the fuzzer writes (tor's test vector keys).
_NTOR = ntor.NtorHandshake(
    bytes.fromhex("69546f6c64596f7541626f75745374616972732e"),
    bytes.fromhex("ccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471"),
    private_key=b"x" * 32,
)


def fuzz_linkspec(data: bytes) -> None:
    """EXTEND2's link specifiers, which re-encode to the bytes they came from; the same bytes
    as an ntor server reply, which fails cleanly (nobody forges AUTH by fuzzing)."""
    try:
        specs, used = linkspec.decode_link_specifiers(data)
    except WebtunnelError:
        pass
    else:
        assert linkspec.encode_specifier_list(specs) == data[:used]
    try:
        _NTOR.complete(data)
    except WebtunnelError:
        pass


#: A fixed client ntor v3 handshake (prop 332's test-vector keys) asking for congestion control.
_NTOR_V3 = ntor_v3.NtorV3Handshake(
    bytes.fromhex("9fad2af287ef942632833d21f946c6260c33fae6172b60006e86e4a6911753a2"),
    bytes.fromhex("f8307a2bc1870b00b828bb74dbb8fd88e632a6375ab3bcd1ae706aaa8b6cdd1d"),
    handshake_ext.cc_request(),
    private_key=b"x" * 32,
)


def fuzz_ntor_v3(data: bytes) -> None:
    """The bytes as an ntor v3 server reply (fails cleanly: nobody forges AUTH by fuzzing) and
    as the extension list of a server message, which re-encodes to the bytes it came from."""
    try:
        _NTOR_V3.complete(data)
    except WebtunnelError:
        pass
    try:
        exts = handshake_ext.decode_extensions(data)
    except WebtunnelError:
        return
    assert handshake_ext.encode_extensions(exts) == data
    try:
        handshake_ext.parse_cc_response(data)
    except WebtunnelError:
        pass


def fuzz_relay_msgs(data: bytes) -> None:
    """Every relay message decoder on one message body (at most 498 bytes on the wire)."""
    body = data[: cells.MAX_RELAY_DATA]
    for decode in (
        relay_msgs.created2_hdata,
        relay_msgs.extended2_hdata,
        relay_msgs.decode_connected,
        relay_msgs.decode_end_reason,
        relay_msgs.decode_resolved,
        relay_msgs.decode_sendme,
        relay_msgs.decode_xoff,
        relay_msgs.decode_xon,
    ):
        try:
            decode(body)
        except WebtunnelError:
            pass


def _one_hop_circuit() -> tuple[Circuit, RelayCrypto]:
    """A circuit opened with CREATE_FAST, and the relay's end of its crypto (the client's keys
    with the directions swapped: what the relay sends backward is its "outbound")."""
    circuit = Circuit(0x80000001, 5, lambda n: bytes(n))
    circuit.create_fast()
    (create,) = circuit.cells_to_send()
    y = bytes(range(20))
    material = kdf_tor(create.payload + y, 92)
    circuit.receive_cell(
        cells.Cell(create.circ_id, cells.CellCommand.CREATED_FAST, y + material[:20])
    )
    keys = HopKeys.from_material(material[20:])
    relay = RelayCrypto()
    relay.add_hop(HopKeys(keys.db, keys.df, keys.kb, keys.kf))
    return circuit, relay


def fuzz_circuit(data: bytes) -> None:
    """Relay messages from a hostile first hop, validly encrypted, to a circuit with a BEGIN_DIR,
    a BEGIN and a RESOLVE open: ``command [1] | stream [1] | length [1] | data`` each. The
    circuit must never raise, and must stop at its own CircuitClosed. An odd first byte puts the
    hop under congestion control first (Vegas, XON/XOFF)."""
    circuit, relay = _one_hop_circuit()
    if data[:1] and data[0] & 1:
        circuit.enable_congestion_control(0, 31, clock=lambda: 1.0)
        data = data[1:]
    circuit.begin_dir(consume_on_delivery=False)
    circuit.begin("example.com", 80)
    circuit.resolve("example.com")
    offset = 0
    while offset + 3 <= len(data):
        command, stream, length = data[offset], data[offset + 1] % 5, data[offset + 2]
        body = data[offset + 3 : offset + 3 + length]
        offset += 3 + length
        payload = cells.encode_relay_payload(cells.RelayCell(command, stream, body))
        wire = relay.encrypt_outbound(payload)
        events = circuit.receive_cell(cells.Cell(0x80000001, cells.CellCommand.RELAY, wire))
        for event in events:
            if isinstance(event, StreamData):
                circuit.consumed(event.stream_id, len(event.data))
                circuit.send_data(event.stream_id, event.data)
        circuit.cells_to_send()
        if any(isinstance(e, CircuitClosed) for e in events):
            assert circuit.receive_cell(cells.Cell(0x80000001, cells.CellCommand.RELAY, wire)) == []
            return


TARGETS: dict[str, Callable[[bytes], None]] = {
    "proxy_uri": fuzz_proxy_uri,
    "proxy": fuzz_proxy_handshakes,
    "cells": fuzz_cells,
    "relay_msgs": fuzz_relay_msgs,
    "circuit": fuzz_circuit,
    "certs": fuzz_certs,
    "directory": fuzz_directory,
    "netdoc": fuzz_netdoc,
    "keycert": fuzz_keycert,
    "consensus": fuzz_consensus,
    "microdesc": fuzz_microdesc,
    "linkspec": fuzz_linkspec,
    "ntor_v3": fuzz_ntor_v3,
    "args": fuzz_args,
    "socks": fuzz_socks,
    "upgrade": fuzz_upgrade,
    "bridge": fuzz_bridge,
    "env": fuzz_env,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz.targets {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
