"""The relay side of ntor v3 (prop 332 "Server operation"), written from the spec for the tests
of :mod:`webtunnel_pt.tor.ntor_v3`: it checks the client's onionskin, decrypts its message,
answers with a message of its choice, and derives the same hop keys.

    server = NtorV3Server.generate(seed=1)
    hs = NtorV3Handshake(server.identity, server.onion_key, b"hi")
    reply = server.respond(hs.onionskin, server_message=b"ho")
    assert hs.complete(reply.hdata) == reply.keys and reply.client_message == b"hi"

Only the tweakable primitives (ENCAP, H, MAC, KDF, ENC) are shared with the client: they are
pinned by the spec's test vectors. The phase order and field layout are written here again.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from webtunnel_pt.tor.ntor_v3 import (
    CIRCUIT_EXTEND_VERIFICATION,
    PROTOID,
    T_AUTH,
    T_FINAL,
    T_KEY_SEED,
    T_MSGKDF,
    T_MSGMAC,
    T_VERIFY,
    aes256_ctr,
    encap,
    h3,
    kdf3,
    mac3,
)
from webtunnel_pt.tor.onionskin import HOP_KEY_MATERIAL_LEN, HopKeys

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class ServerRefused(Exception):
    """The server side refused the client's onionskin (what a relay would answer with
    DESTROY)."""


def public_of(secret: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(*RAW)


def _dh(secret: bytes, public: bytes) -> bytes:
    shared = X25519PrivateKey.from_private_bytes(secret).exchange(
        X25519PublicKey.from_public_bytes(public)
    )
    if not any(shared):
        raise ServerRefused("all-zero shared secret")
    return shared


@dataclass(frozen=True)
class ServerReply:
    hdata: bytes  # Y | AUTH | MSG
    keys: HopKeys
    client_message: bytes
    keystream: bytes  # the key material after ENC_KEY, 256 bytes


@dataclass(frozen=True)
class NtorV3Server:
    identity: bytes  # the relay's Ed25519 identity, 32 bytes
    onion_secret: bytes  # b
    verification: bytes = CIRCUIT_EXTEND_VERIFICATION

    @classmethod
    def generate(cls, seed: int) -> NtorV3Server:
        stretched = hashlib.shake_256(b"ntor v3 test relay %d" % seed).digest(64)
        return cls(stretched[:32], stretched[32:])

    @property
    def onion_key(self) -> bytes:
        """B."""
        return public_of(self.onion_secret)

    def respond(
        self,
        onionskin: bytes,
        server_message: bytes = b"",
        *,
        y_secret: bytes | None = None,
    ) -> ServerReply:
        """Check ``ID | B | X | MSG | MAC``; answer ``Y | AUTH | ENC(SM)``."""
        if len(onionskin) < 128:
            raise ServerRefused("onionskin too short")
        node_id, key_id, x = onionskin[:32], onionskin[32:64], onionskin[64:96]
        encrypted_cm, client_mac = onionskin[96:-32], onionskin[-32:]
        if node_id != self.identity or key_id != self.onion_key:
            raise ServerRefused("not my identity or onion key")
        ver = encap(self.verification)
        xb = _dh(self.onion_secret, x)
        phase1 = kdf3(xb + node_id + x + key_id + PROTOID + ver, T_MSGKDF, 64)
        expected = mac3(phase1[32:], node_id + key_id + x + encrypted_cm, T_MSGMAC)
        if not hmac.compare_digest(expected, client_mac):
            raise ServerRefused("client MAC does not match")
        client_message = aes256_ctr(phase1[:32], encrypted_cm)

        y_secret = y_secret if y_secret is not None else hashlib.sha256(onionskin).digest()
        y = public_of(y_secret)
        xy = _dh(y_secret, x)
        secret_input = xy + xb + node_id + key_id + x + y + PROTOID + ver
        key_seed = h3(secret_input, T_KEY_SEED)
        verify = h3(secret_input, T_VERIFY)
        raw = kdf3(key_seed, T_FINAL, 32 + 256)
        encrypted_sm = aes256_ctr(raw[:32], server_message)
        auth_input = (
            verify
            + node_id
            + key_id
            + y
            + x
            + client_mac
            + encap(encrypted_sm)
            + PROTOID
            + b"Server"
        )
        auth = h3(auth_input, T_AUTH)
        keystream = raw[32:]
        return ServerReply(
            y + auth + encrypted_sm,
            HopKeys.from_material(keystream[:HOP_KEY_MATERIAL_LEN]),
            client_message,
            keystream,
        )
