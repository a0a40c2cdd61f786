"""link.kdf and link.onionskin: KDF-TOR and CREATE_FAST with the vectors of tor-link.md §11."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import CircuitHandshakeError
from webtunnel_pt.tor.kdf import kdf_tor
from webtunnel_pt.tor.onionskin import CreateFastHandshake, HopKeys

KDF_EMPTY_PREFIX = "5ba93c9db0cff93f52b521d7420e43f6eda2784fbf8b4530d8d246dd74ac53a1"
KDF_TOR = (
    "776c6214fc647aaa5f683c737ee66ec44f03d0372e1cce69227950f236ddf1e329a7ce7c227903303f525a8c"
    "6662426e8034870642a6dabbd41b5d97ec9bf2312ea729992f48f8ea2d0ba83f45dfda1a80bdc8b80de01b23"
    "e3e0ffae099b3e4ccf28dc28"
)
X = bytes.fromhex("080E247DF7C252FCD2DC10F459703480C223E3A6")
Y = bytes.fromhex("BA95C0D092335428BF80093BBED0B7A26C49E1E8")
KH = bytes.fromhex("696FBF9C8D6BE26504219C000D26AFE370FCEF04")
KEYS = bytes.fromhex(
    "AFA89B4FC8CF882335A582C52478B5FCB1E08DAF707E2C2D23B8C27D30BD461F3DF98A3AF82221CB658AD0AA"
    "8680B99067E4F7DBC546970EA9A56B26433C71DA867BDD09C14A1308BC327D6A448D71D2382B3AB6AF0BB4E1"
    "9649A8DFF607DB9C57A04AC3"
)


def test_kdf_tor_empty() -> None:
    assert kdf_tor(b"", 100).hex().startswith(KDF_EMPTY_PREFIX)


def test_kdf_tor_vector() -> None:
    assert kdf_tor(b"Tor", 100).hex() == KDF_TOR


def test_kdf_tor_prefix_property() -> None:
    assert kdf_tor(b"Tor", 33) == kdf_tor(b"Tor", 100)[:33]


def test_create_fast_vector_from_tor() -> None:
    handshake = CreateFastHandshake(x=X)
    assert handshake.onionskin == X
    keys = handshake.complete(Y + KH)
    assert keys == HopKeys.from_material(KEYS)
    assert (keys.df, keys.db, keys.kf, keys.kb) == (
        KEYS[:20],
        KEYS[20:40],
        KEYS[40:56],
        KEYS[56:72],
    )


def test_create_fast_rejects_wrong_key_hash() -> None:
    bad = bytearray(KH)
    bad[0] ^= 1
    with pytest.raises(CircuitHandshakeError, match="key hash"):
        CreateFastHandshake(x=X).complete(Y + bytes(bad))


def test_create_fast_rejects_truncated_reply() -> None:
    with pytest.raises(CircuitHandshakeError):
        CreateFastHandshake(x=X).complete(Y)


def test_create_fast_x_is_random_and_injectable() -> None:
    assert CreateFastHandshake(rng=lambda n: b"\x01" * n).onionskin == b"\x01" * 20
    assert CreateFastHandshake().onionskin != CreateFastHandshake().onionskin
