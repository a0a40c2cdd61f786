"""link.relay_crypto: the 3-hop vector of tor-link.md §11 and the receive rules of §7.3."""

from __future__ import annotations

import hashlib

import pytest

from webtunnel_pt.errors import LinkProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import PAYLOAD_LEN, RelayCell, encode_relay_payload, with_digest
from webtunnel_pt.tor.onionskin import HopKeys
from webtunnel_pt.tor.relay_crypto import AesCtr, RelayCrypto

K1 = b"    'My public key is in this signed x509 object', said Tom assertively.      (N-PREG-VIRYL)"
K2 = b"'Let's chart the pedal phlanges in the tomb', said Tom cryptographically.  (PELCG-GBR-TENCU)"
K3 = b"     'Segmentation fault bugs don't _just happen_', said Tom seethingly.        (P-GUVAT-YL)"
SEED = b"'You mean to tell me that there's a version of Sha-3 with no limit on the output length?', said Tom shakily."
CELL0_PREFIX = "CAEC8C2606B65A1D42EEBB1DD3FDC997"
CELL_SHA256 = {
    0: "f3cc9a1db3b472b95a5344d4bd9756bf8a1b827b4b65770f4bea3e2486e37ad6",
    1: "d531b194233f70e76d72e4d5b656099328ae95634401bbb26ae71904b26b65a6",
    50: "0ceaabe1dd9fd32184163dcf130543ec24c58f4aa5c3a718a782e01cfa2305fb",
}


def three_hops() -> RelayCrypto:
    crypto = RelayCrypto()
    for key in (K1, K2, K3):
        assert len(key) == 92
        crypto.add_hop(HopKeys.from_material(key))
    return crypto


def test_outbound_vector_from_tor() -> None:
    crypto = three_hops()
    stream = hashlib.shake_256(SEED).digest(51 * 498)
    for n in range(51):
        payload = bytearray(PAYLOAD_LEN)
        payload[0] = 2
        payload[3:5] = b"\x00\x01"
        payload[9:11] = bytes.fromhex("01f2")
        payload[11:] = stream[n * 498 : (n + 1) * 498]
        wire = crypto.encrypt_outbound(bytes(payload), hop=2)
        if n == 0:
            assert wire.hex().upper().startswith(CELL0_PREFIX)
        if n in CELL_SHA256:
            assert hashlib.sha256(wire).hexdigest() == CELL_SHA256[n], n


class FakeRelayHop:
    """The relay's side of one hop, written from the spec (roles reversed)."""

    def __init__(self, keys: HopKeys) -> None:
        self.forward = AesCtr(keys.kf)
        self.backward = AesCtr(keys.kb)
        self.forward_digest = hashlib.sha1(keys.df)
        self.backward_digest = hashlib.sha1(keys.db)

    def originate(self, cell: RelayCell) -> bytes:
        payload = encode_relay_payload(cell)
        self.backward_digest.update(payload)
        return self.backward.process(with_digest(payload, self.backward_digest.digest()))


def test_inbound_from_each_hop() -> None:
    crypto = three_hops()
    relays = [FakeRelayHop(HopKeys.from_material(k)) for k in (K1, K2, K3)]
    for origin in (2, 0, 1, 2, 2, 0):
        wire = relays[origin].originate(RelayCell(2, 7, f"from hop {origin}".encode()))
        for hop in range(origin - 1, -1, -1):  # earlier hops add their layers on the way back
            wire = relays[hop].backward.process(wire)
        inbound = crypto.decrypt_inbound(wire)
        assert inbound.hop == origin
        assert inbound.payload[11 : 11 + 10] == f"from hop {origin}".encode()
        assert inbound.digest == relays[origin].backward_digest.digest()


def test_unrecognized_cell_is_an_error_and_not_rolled_back() -> None:
    """No rollback (as in tor): the keystream has moved past the bad cell, so the next good
    one no longer decrypts; the caller must tear the circuit down (Circuit does)."""
    crypto = RelayCrypto()
    crypto.add_hop(HopKeys.from_material(K1))
    relay = FakeRelayHop(HopKeys.from_material(K1))
    good = relay.originate(RelayCell(2, 1, b"first"))
    corrupt = bytearray(good)
    corrupt[100] ^= 0xFF
    with pytest.raises(LinkProtocolError, match="not recognized"):
        crypto.decrypt_inbound(bytes(corrupt))
    with pytest.raises(LinkProtocolError, match="not recognized"):
        crypto.decrypt_inbound(good)


def test_digest_advances_only_on_a_match() -> None:
    """A cell whose Recognized field is 0 at hop 1 but whose digest is wrong is offered to
    hop 2; hop 1's running digest is left as it was."""
    crypto = three_hops()
    relays = [FakeRelayHop(HopKeys.from_material(k)) for k in (K1,)]
    inner = bytearray(PAYLOAD_LEN)  # what hop 1 sees after its layer: Recognized 0, bad digest
    inner[5:9] = b"\xde\xad\xbe\xef"
    wire = relays[0].backward.process(bytes(inner))
    before = crypto.hops[0].backward_digest.digest()
    with pytest.raises(LinkProtocolError, match="not recognized"):
        crypto.decrypt_inbound(wire)
    assert crypto.hops[0].backward_digest.digest() == before
    # a real cell from hop 1 after it: its digest follows on from the uncommitted state
    inbound = crypto.decrypt_inbound(relays[0].originate(RelayCell(2, 4, b"after")))
    assert (inbound.hop, inbound.payload[11:16]) == (0, b"after")


def test_outbound_reaches_relay_with_valid_digest() -> None:
    crypto = RelayCrypto()
    crypto.add_hop(HopKeys.from_material(K2))
    relay = FakeRelayHop(HopKeys.from_material(K2))
    for text in (b"one", b"two"):
        plain = relay.forward.process(
            crypto.encrypt_outbound(encode_relay_payload(RelayCell(2, 3, text)))
        )
        relay.forward_digest.update(with_digest(plain, bytes(4)))
        assert plain[5:9] == relay.forward_digest.digest()[:4]
        assert plain[11:14] == text


def test_ctr_offsets_are_continuous() -> None:
    whole = AesCtr(K1[40:56]).process(bytes(1000))
    pieces = AesCtr(K1[40:56])
    assert b"".join(pieces.process(bytes(n)) for n in (1, 15, 16, 17, 509, 442)) == whole


def test_outbound_needs_hops_and_zero_digest() -> None:
    with pytest.raises(LocalProtocolError):
        RelayCrypto().encrypt_outbound(bytes(PAYLOAD_LEN))
    crypto = three_hops()
    with pytest.raises(LocalProtocolError):
        crypto.encrypt_outbound(b"\x02" + b"\x01" * 508)


# ---- one read's cells together: decrypt_inbound_batch --------------------------------------


def _wires(origins: list[int]) -> list[bytes]:
    """Cells from the given hops, each with the layers of the hops before it, in order."""
    relays = [FakeRelayHop(HopKeys.from_material(k)) for k in (K1, K2, K3)]
    wires = []
    for n, origin in enumerate(origins):
        wire = relays[origin].originate(RelayCell(2, 7, f"cell {n} from hop {origin}".encode()))
        for hop in range(origin - 1, -1, -1):
            wire = relays[hop].backward.process(wire)
        wires.append(wire)
    return wires


@pytest.mark.parametrize(
    "origins", [[2] * 40, [2, 2, 0, 2, 1, 2, 2], [0, 0, 1], [1, 2, 0, 2], [2], []]
)
def test_a_batch_decrypts_as_cells_one_by_one(origins: list[int]) -> None:
    """Cells of every hop mixed in one batch (a hop's cell stops there and the others go on
    through the remaining layers): the same hops, payloads and digests as one by one, and
    the crypto state after it is the same (the next cell decrypts the same way too)."""
    wires = _wires([*origins, 2])
    one, batch = three_hops(), three_hops()
    expected = [one.decrypt_inbound(wire) for wire in wires[:-1]]
    done, error = batch.decrypt_inbound_batch(wires[:-1])
    assert error is None
    assert done == expected
    assert batch.decrypt_inbound(wires[-1]) == one.decrypt_inbound(wires[-1])


def test_a_batch_stops_at_the_first_cell_no_hop_recognizes() -> None:
    wires = _wires([2, 2, 2, 2])
    corrupt = bytearray(wires[2])
    corrupt[200] ^= 0x01
    wires[2] = bytes(corrupt)
    crypto = three_hops()
    done, error = crypto.decrypt_inbound_batch(wires)
    assert [inbound.payload[11:22] for inbound in done] == [b"cell 0 from", b"cell 1 from"]
    assert isinstance(error, LinkProtocolError) and "not recognized" in str(error)


def test_a_batch_refuses_a_payload_of_another_length() -> None:
    done, error = three_hops().decrypt_inbound_batch([bytes(PAYLOAD_LEN), bytes(10)])
    assert done == [] and isinstance(error, LinkProtocolError)
