"""Client side of the ntor v3 handshake, CREATE2 / EXTEND2 HTYPE 0x0003 (tor-spec "The ntor-v3
handshake", prop 332).

    hs = NtorV3Handshake(relay_ed25519_id, ntor_onion_key, message=cc_request())
    create2 = htype(hs.htype) | hlen | hs.onionskin   # ID [32] | B [32] | X [32] | MSG | MAC [32]
    keys = hs.complete(created2_hdata)                 # Y [32] | AUTH [32] | MSG -> HopKeys
    hs.server_message                                  # the relay's decrypted message (b"": none)

Unlike ntor (HTYPE 2) the relay is named by its 32-byte **Ed25519** identity; the onion key is
the same Curve25519 ``ntor-onion-key``. Each side may carry an encrypted message (an extension
list, :mod:`~webtunnel_pt.tor.handshake_ext`): the client's has no forward secrecy (it is
encrypted to the onion key only), the server's is encrypted with a key from both DH results.

The construction (prop 332 A.1, with PROTOID ``ntor3-curve25519-sha3_256-1``)::

    ENCAP(s) = htonll(len(s)) | s
    H(s, t) = SHA3-256(ENCAP(t) | s)        MAC(k, m, t) = SHA3-256(ENCAP(t) | ENCAP(k) | m)
    KDF(s, t) = SHAKE-256(ENCAP(t) | s)     ENC(k, m) = AES-256-CTR(k, m), IV 0

    phase 1:  ENC_K1 | MAC_K1 = KDF(Bx | ID | X | B | PROTOID | ENCAP(VER), t_msgkdf)
              MSG = ENC(ENC_K1, CM);  MAC = MAC(MAC_K1, ID | B | X | MSG, t_msgmac)
    phase 2:  secret_input = Yx | Bx | ID | B | X | Y | PROTOID | ENCAP(VER)
              AUTH = H(H(secret_input, t_verify) | ID | B | Y | X | MAC | ENCAP(SMSG)
                       | PROTOID | "Server", t_auth)
              ENC_KEY | Df | Db | Kf | Kb | ... = KDF(H(secret_input, t_key_seed), t_final)

``VER`` is ``"circuit extend"`` for circuit extension (what tor and arti use). The key material
after ENC_KEY is split ``Df [20] | Db [20] | Kf [16] | Kb [16]`` for tor1 relay crypto, the
layout ntor uses (:class:`~webtunnel_pt.tor.onionskin.HopKeys`).

:meth:`NtorV3Handshake.complete` checks AUTH in constant time and refuses a short reply or an
all-zero Diffie-Hellman result: :class:`~webtunnel_pt.errors.CircuitHandshakeError`.

Sans-I/O: needs ``cryptography`` (X25519, AES) and ``hashlib`` (SHA3, SHAKE), nothing touches
the network.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from webtunnel_pt.errors import CircuitHandshakeError, LocalProtocolError
from webtunnel_pt.tor.ntor import x25519_shared
from webtunnel_pt.tor.onionskin import HOP_KEY_MATERIAL_LEN, HopKeys

__all__ = [
    "CIRCUIT_EXTEND_VERIFICATION",
    "HTYPE_NTOR_V3",
    "MAX_MESSAGE_LEN",
    "REPLY_MIN_LEN",
    "NtorV3Handshake",
]

#: CREATE2 / EXTEND2 handshake type of ntor v3 (tor-spec §5.1).
HTYPE_NTOR_V3 = 0x0003
PROTOID = b"ntor3-curve25519-sha3_256-1"
T_MSGKDF = PROTOID + b":kdf_phase1"
T_MSGMAC = PROTOID + b":msg_mac"
T_KEY_SEED = PROTOID + b":key_seed"
T_VERIFY = PROTOID + b":verify"
T_FINAL = PROTOID + b":kdf_final"
T_AUTH = PROTOID + b":auth_final"
#: The verification string of circuit extension (tor's and arti's ``"circuit extend"``).
CIRCUIT_EXTEND_VERIFICATION = b"circuit extend"
#: Sizes (prop 332 A.1): identities, keys, digests and MACs are all 32 bytes.
ID_LEN = 32
KEY_LEN = 32
DIGEST_LEN = 32
ENC_KEY_LEN = 32
MAC_KEY_LEN = 32
#: Client HDATA without the message: ``ID | B | X | MAC``.
ONIONSKIN_OVERHEAD = ID_LEN + 2 * KEY_LEN + DIGEST_LEN
#: Server HDATA without the message: ``Y | AUTH``.
REPLY_MIN_LEN = KEY_LEN + DIGEST_LEN
#: The largest client message that fits a CREATE2 cell (509 - HTYPE - HLEN - overhead); an
#: EXTEND2 has less room (its link specifiers), which its encoder checks.
MAX_MESSAGE_LEN = 509 - 4 - ONIONSKIN_OVERHEAD

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def encap(data: bytes) -> bytes:
    """``ENCAP(s) = htonll(len(s)) | s``."""
    return struct.pack(">Q", len(data)) + data


def h3(data: bytes, tweak: bytes) -> bytes:
    """``H(s, t) = SHA3-256(ENCAP(t) | s)``."""
    return hashlib.sha3_256(encap(tweak) + data).digest()


def mac3(key: bytes, data: bytes, tweak: bytes) -> bytes:
    """``MAC(k, msg, t) = SHA3-256(ENCAP(t) | ENCAP(k) | msg)``."""
    return hashlib.sha3_256(encap(tweak) + encap(key) + data).digest()


def kdf3(data: bytes, tweak: bytes, length: int) -> bytes:
    """The first ``length`` bytes of ``KDF(s, t) = SHAKE-256(ENCAP(t) | s)``."""
    return hashlib.shake_256(encap(tweak) + data).digest(length)


def aes256_ctr(key: bytes, data: bytes) -> bytes:
    """``ENC(k, m)``: AES-256 in counter mode from a zero IV (its own inverse)."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return encryptor.update(data) + encryptor.finalize()


class NtorV3Handshake:
    """One client ntor v3 handshake with one relay. :meth:`complete` keeps no state but the
    ephemeral key and phase-1 values, so a failed reply does not spoil a later good one."""

    def __init__(
        self,
        relay_ed25519_id: bytes,
        ntor_onion_key: bytes,
        message: bytes = b"",
        *,
        rng: Callable[[int], bytes] = os.urandom,
        private_key: bytes | None = None,
        verification: bytes = CIRCUIT_EXTEND_VERIFICATION,
    ) -> None:
        """``message`` is the client message (an encoded extension list); ``private_key`` (32
        bytes, clamped by X25519) pins the ephemeral key for tests, otherwise it is ``rng(32)``;
        ``verification`` is for the spec's test vectors only.

        Raises :class:`LocalProtocolError` for wrong sizes, :class:`CircuitHandshakeError` if
        the onion key is a low-order point."""
        if len(relay_ed25519_id) != ID_LEN:
            raise LocalProtocolError("ntor v3: the relay Ed25519 identity must be 32 bytes")
        if len(ntor_onion_key) != KEY_LEN:
            raise LocalProtocolError("ntor v3: the relay ntor onion key must be 32 bytes")
        if len(message) > MAX_MESSAGE_LEN:
            raise LocalProtocolError(f"ntor v3: the client message exceeds {MAX_MESSAGE_LEN} B")
        secret = private_key if private_key is not None else rng(KEY_LEN)
        if len(secret) != KEY_LEN:
            raise LocalProtocolError("ntor v3: the ephemeral private key must be 32 bytes")
        self._id = bytes(relay_ed25519_id)
        self._b = bytes(ntor_onion_key)
        self._ver = encap(bytes(verification))
        self._x = X25519PrivateKey.from_private_bytes(secret)
        self._x_pub = self._x.public_key().public_bytes(*_RAW)
        self._bx = x25519_shared(self._x, self._b, "the relay's ntor onion key", protocol="ntor v3")
        phase1 = self._bx + self._id + self._x_pub + self._b + PROTOID + self._ver
        keys = kdf3(phase1, T_MSGKDF, ENC_KEY_LEN + MAC_KEY_LEN)
        encrypted = aes256_ctr(keys[:ENC_KEY_LEN], bytes(message))
        self._mac = mac3(keys[ENC_KEY_LEN:], self._id + self._b + self._x_pub + encrypted, T_MSGMAC)
        self._onionskin = self._id + self._b + self._x_pub + encrypted + self._mac
        self._server_message: bytes | None = None

    @property
    def htype(self) -> int:
        """The CREATE2 / EXTEND2 HTYPE: 0x0003."""
        return HTYPE_NTOR_V3

    @property
    def onionskin(self) -> bytes:
        """The client HDATA: ``ID [32] | B [32] | X [32] | MSG | MAC [32]``."""
        return self._onionskin

    @property
    def server_message(self) -> bytes:
        """The relay's decrypted message (b"" if it sent none), once :meth:`complete` passed."""
        if self._server_message is None:
            raise LocalProtocolError("ntor v3: no server message before the handshake completes")
        return self._server_message

    def complete(self, reply: bytes) -> HopKeys:
        """Check the server HDATA ``Y [32] | AUTH [32] | MSG`` (the message runs to the end
        of HDATA), derive the hop's keys and decrypt the server's message.

        Raises :class:`CircuitHandshakeError` if the reply is short, Y gives an all-zero
        shared secret, or AUTH does not match.
        """
        if len(reply) < REPLY_MIN_LEN:
            raise CircuitHandshakeError(
                f"ntor v3: server reply is {len(reply)} bytes, expected at least {REPLY_MIN_LEN}"
            )
        reply = bytes(reply)
        y, auth, encrypted = reply[:KEY_LEN], reply[KEY_LEN:REPLY_MIN_LEN], reply[REPLY_MIN_LEN:]
        yx = x25519_shared(self._x, y, "the server's Y", protocol="ntor v3")
        secret_input = yx + self._bx + self._id + self._b + self._x_pub + y + PROTOID + self._ver
        verify = h3(secret_input, T_VERIFY)
        auth_input = (
            verify
            + self._id
            + self._b
            + y
            + self._x_pub
            + self._mac
            + encap(encrypted)
            + PROTOID
            + b"Server"
        )
        if not hmac.compare_digest(h3(auth_input, T_AUTH), auth):
            raise CircuitHandshakeError("ntor v3: the server's AUTH does not match")
        key_seed = h3(secret_input, T_KEY_SEED)
        stream = kdf3(key_seed, T_FINAL, ENC_KEY_LEN + HOP_KEY_MATERIAL_LEN)
        self._server_message = aes256_ctr(stream[:ENC_KEY_LEN], encrypted)
        return HopKeys.from_material(stream[ENC_KEY_LEN:])
