"""tor.ntor: the client side of ntor (tor-spec §5.1.4) against tor's own test vectors
(tor-link.md §11) byte for byte, and against a server written here from the spec, with the
server's reply mutated to every way it can go wrong."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from webtunnel_pt.errors import CircuitHandshakeError, LocalProtocolError
from webtunnel_pt.tor.ntor import HTYPE_NTOR, NtorHandshake, ntor_kdf
from webtunnel_pt.tor.onionskin import HopKeys

# tor's ntor test data (tor-link.md §11).
B_SECRET = bytes.fromhex("4820544f4c4420594f5520444f474954204b454550532048415050454e494e47")
B_PUB = bytes.fromhex("ccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471")
X_SECRET = bytes.fromhex("706f6461792069207075742e2e2e2e2e2e2e2e4a454c4c59206f6e2074686973")
X_PUB = bytes.fromhex("e65dfdbef8b2635837fe2cebc086a8096eae3213e6830dc407516083d412b078")
Y_SECRET = bytes.fromhex("70686520737175697272656c2e2e2e2e2e2e2e2e686173206869732067616d65")
Y_PUB = bytes.fromhex("390480a14362761d6aec1fea840f6e9e928fb2adb7b25c670be1045e35133a37")
NODE_ID = bytes.fromhex("69546f6c64596f7541626f75745374616972732e")
SERVER_HDATA = Y_PUB + bytes.fromhex(
    "1cbdf68b89923e1f85e8e18ee6e805ea333fe4849c790ffd2670bd80fec95cc8"
)
KEYS = bytes.fromhex(
    "0c62dee7f48893370d0ef896758d35729867beef1a5121df80e00f79ed349af3"
    "9b51cae125719182f19d932a667dae1afbf2e336e6910e7822223e763afad0a1"
    "3342157969dc6b79"
)
HKDF_TOR_100 = bytes.fromhex(
    "5521492a85139a8d9107a2d5c0d9c91610d0f95989975ebee6c02a4f8d622a6cfdf9b7c7edd3832e2760ded1"
    "eac309b76f8d66c4a3c4d6225429b3a016e3c3d45911152fc87bc2de9630c3961be9fdb9f93197ea8e597718"
    "0801926d3321fa21513e59ac"
)
#: Points of small order on Curve25519: X25519 with any of them is all-zero.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
PROTOID = b"ntor-curve25519-sha256-1"


def vector_handshake() -> NtorHandshake:
    return NtorHandshake(NODE_ID, B_PUB, private_key=X_SECRET)


def test_vector_onionskin() -> None:
    hs = vector_handshake()
    assert hs.htype == HTYPE_NTOR == 2
    assert hs.onionskin == NODE_ID + B_PUB + X_PUB
    assert len(hs.onionskin) == 84


def test_vector_keys() -> None:
    keys = vector_handshake().complete(SERVER_HDATA)
    assert keys == HopKeys(KEYS[0:20], KEYS[20:40], KEYS[40:56], KEYS[56:72])


def test_rng_gives_the_ephemeral_key() -> None:
    hs = NtorHandshake(NODE_ID, B_PUB, rng=lambda n: X_SECRET[:n])
    assert hs.onionskin == vector_handshake().onionskin
    assert hs.complete(SERVER_HDATA).df == KEYS[:20]


def test_fresh_keys_each_handshake() -> None:
    assert NtorHandshake(NODE_ID, B_PUB).onionskin != NtorHandshake(NODE_ID, B_PUB).onionskin


def test_hkdf_vector() -> None:
    assert ntor_kdf(b"Tor", 100) == HKDF_TOR_100


def test_longer_reply_uses_the_first_64_bytes() -> None:
    assert vector_handshake().complete(SERVER_HDATA + b"\x00\x00").df == KEYS[:20]


@pytest.mark.parametrize("length", [0, 32, 63])
def test_short_reply(length: int) -> None:
    with pytest.raises(CircuitHandshakeError, match="expected 64"):
        vector_handshake().complete(SERVER_HDATA[:length])


@pytest.mark.parametrize("index", [0, 31, 32, 45, 63])
def test_any_flipped_bit_fails(index: int) -> None:
    bad = bytearray(SERVER_HDATA)
    bad[index] ^= 0x01
    with pytest.raises(CircuitHandshakeError):
        vector_handshake().complete(bytes(bad))


def test_failed_reply_does_not_spoil_the_handshake() -> None:
    hs = vector_handshake()
    with pytest.raises(CircuitHandshakeError):
        hs.complete(SERVER_HDATA[:32] + bytes(32))
    assert hs.complete(SERVER_HDATA).kb == KEYS[56:72]


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_y_refused(point: bytes) -> None:
    with pytest.raises(CircuitHandshakeError, match="all-zero"):
        vector_handshake().complete(point + SERVER_HDATA[32:])


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_onion_key_refused(point: bytes) -> None:
    hs = NtorHandshake(NODE_ID, point, private_key=X_SECRET)
    with pytest.raises(CircuitHandshakeError, match="onion key"):
        hs.complete(SERVER_HDATA)


@pytest.mark.parametrize(
    ("identity", "onion_key", "secret"),
    [(bytes(19), B_PUB, None), (NODE_ID, bytes(31), None), (NODE_ID, B_PUB, bytes(33))],
)
def test_bad_local_arguments(identity: bytes, onion_key: bytes, secret: bytes | None) -> None:
    with pytest.raises(LocalProtocolError):
        NtorHandshake(identity, onion_key, private_key=secret)


def test_kdf_bounds() -> None:
    assert len(ntor_kdf(b"x", 255 * 32)) == 255 * 32
    with pytest.raises(LocalProtocolError):
        ntor_kdf(b"x", 255 * 32 + 1)


# ---- an independent server, written from tor-spec §5.1.4 ------------------------------------


def mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass
class NtorServer:
    """The relay side: knows b and its identity; answers a client onionskin."""

    node_id: bytes
    b: X25519PrivateKey

    @property
    def b_pub(self) -> bytes:
        return self.b.public_key().public_bytes(*RAW)

    def respond(self, onionskin: bytes, y: X25519PrivateKey) -> tuple[bytes, bytes]:
        """(server HDATA, 72 bytes of key material)."""
        assert onionskin[:20] == self.node_id and onionskin[20:52] == self.b_pub
        x_pub = onionskin[52:84]
        client = X25519PublicKey.from_public_bytes(x_pub)
        y_pub = y.public_key().public_bytes(*RAW)
        secret_input = (
            y.exchange(client)
            + self.b.exchange(client)
            + self.node_id
            + self.b_pub
            + x_pub
            + y_pub
            + PROTOID
        )
        verify = mac(PROTOID + b":verify", secret_input)
        auth_input = verify + self.node_id + self.b_pub + y_pub + x_pub + PROTOID + b"Server"
        auth = mac(PROTOID + b":mac", auth_input)
        kdf = HKDF(
            hashes.SHA256(), 72, salt=PROTOID + b":key_extract", info=PROTOID + b":key_expand"
        )
        return y_pub + auth, kdf.derive(secret_input)


def test_the_vector_server_matches_the_vectors() -> None:
    """The test-side server reproduces tor's data, so it is a fair peer for the rest."""
    server = NtorServer(NODE_ID, X25519PrivateKey.from_private_bytes(B_SECRET))
    hdata, keys = server.respond(
        vector_handshake().onionskin, X25519PrivateKey.from_private_bytes(Y_SECRET)
    )
    assert (hdata, keys) == (SERVER_HDATA, KEYS)


@pytest.mark.parametrize("run", range(4))
def test_full_handshake_with_fresh_keys(run: int) -> None:
    server = NtorServer(hashlib.sha1(b"relay %d" % run).digest(), X25519PrivateKey.generate())
    client = NtorHandshake(server.node_id, server.b_pub)
    hdata, material = server.respond(client.onionskin, X25519PrivateKey.generate())
    assert client.complete(hdata) == HopKeys.from_material(material)


def test_reply_from_a_server_with_another_onion_key_fails() -> None:
    """An impostor without b can answer with its own Y, but not with the right AUTH."""
    real = NtorServer(NODE_ID, X25519PrivateKey.generate())
    impostor = NtorServer(NODE_ID, X25519PrivateKey.generate())
    client = NtorHandshake(NODE_ID, real.b_pub)
    onionskin = client.onionskin[:20] + impostor.b_pub + client.onionskin[52:]
    hdata, _ = impostor.respond(onionskin, X25519PrivateKey.generate())
    with pytest.raises(CircuitHandshakeError, match="AUTH"):
        client.complete(hdata)


def test_swapped_y_fails() -> None:
    server = NtorServer(NODE_ID, X25519PrivateKey.generate())
    client = NtorHandshake(NODE_ID, server.b_pub)
    hdata, _ = server.respond(client.onionskin, X25519PrivateKey.generate())
    other_y = X25519PrivateKey.generate().public_key().public_bytes(*RAW)
    with pytest.raises(CircuitHandshakeError, match="AUTH"):
        client.complete(other_y + hdata[32:])


def test_reply_for_another_client_fails() -> None:
    server = NtorServer(NODE_ID, X25519PrivateKey.generate())
    first, second = NtorHandshake(NODE_ID, server.b_pub), NtorHandshake(NODE_ID, server.b_pub)
    hdata, _ = server.respond(first.onionskin, X25519PrivateKey.generate())
    with pytest.raises(CircuitHandshakeError, match="AUTH"):
        second.complete(hdata)
