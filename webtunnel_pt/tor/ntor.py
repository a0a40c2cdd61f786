"""Client side of the ntor handshake, CREATE2 / EXTEND2 HTYPE 0x0002 (tor-link.md §6,
tor-spec §5.1.4).

    hs = NtorHandshake(relay_rsa_identity, ntor_onion_key)
    create2 = htype(hs.htype) | hlen(84) | hs.onionskin      # ID [20] | B [32] | X [32]
    keys = hs.complete(created2_hdata)                        # Y [32] | AUTH [32] -> HopKeys

``relay_rsa_identity`` is the relay's 20-byte RSA identity digest (its fingerprint),
``ntor_onion_key`` its 32-byte Curve25519 ``ntor-onion-key``. :meth:`NtorHandshake.complete`
checks the server's AUTH in constant time and refuses a degenerate Diffie-Hellman result;
either failure is a :class:`~webtunnel_pt.errors.CircuitHandshakeError`. The key material is
HKDF-SHA256 (RFC 5869) with salt ``t_key`` and info ``m_expand`` over ``secret_input``, split
as ``Df | Db | Kf | Kb`` (:class:`~webtunnel_pt.tor.onionskin.HopKeys`).

Sans-I/O: needs ``cryptography``, nothing touches the network.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from webtunnel_pt.errors import CircuitHandshakeError, LocalProtocolError
from webtunnel_pt.tor.onionskin import HOP_KEY_MATERIAL_LEN, HopKeys

#: CREATE2 / EXTEND2 handshake type of ntor (tor-spec §5.1).
HTYPE_NTOR = 0x0002
PROTOID = b"ntor-curve25519-sha256-1"
T_MAC = PROTOID + b":mac"
T_KEY = PROTOID + b":key_extract"
T_VERIFY = PROTOID + b":verify"
M_EXPAND = PROTOID + b":key_expand"
#: Sizes of the handshake's fields (tor-spec §5.1.4).
ID_LEN = 20
KEY_LEN = 32
AUTH_LEN = 32
#: Client HDATA: ``NODEID [20] | KEYID [32] | CLIENT_PK [32]``.
ONIONSKIN_LEN = ID_LEN + 2 * KEY_LEN
#: Server HDATA: ``SERVER_PK [32] | AUTH [32]``.
REPLY_LEN = KEY_LEN + AUTH_LEN
#: HKDF-SHA256 yields at most 255 blocks of 32 bytes (RFC 5869 §2.3).
MAX_NTOR_KDF_BYTES = 255 * 32

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _h(message: bytes, tweak: bytes) -> bytes:
    """``H(x, t) = HMAC-SHA256(key = t, message = x)``."""
    return hmac.new(tweak, message, hashlib.sha256).digest()


def ntor_kdf(secret_input: bytes, length: int) -> bytes:
    """KDF-RFC5869 as ntor uses it: HKDF-SHA256 with salt ``t_key`` and info ``m_expand``
    (tor-spec §5.2.2); ``KEY_SEED = H(secret_input, t_key)`` is the extract step."""
    if not 0 < length <= MAX_NTOR_KDF_BYTES:
        raise LocalProtocolError(f"the ntor KDF yields 1 to {MAX_NTOR_KDF_BYTES} bytes")
    key_seed = _h(secret_input, T_KEY)
    return HKDFExpand(hashes.SHA256(), length, M_EXPAND).derive(key_seed)


def _public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def x25519_shared(
    secret: X25519PrivateKey, public: bytes, what: str, *, protocol: str = "ntor"
) -> bytes:
    """X25519, refusing the all-zero result of a low-order point (tor-spec §5.1.4; prop 332
    "Security notes" for ntor v3, whose errors name ``protocol``)."""
    try:
        shared = secret.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # cryptography refuses an all-zero shared secret
        raise CircuitHandshakeError(f"{protocol}: {what} gives an all-zero shared secret") from exc
    if not any(shared):  # belt and braces: never rely on the library for this
        raise CircuitHandshakeError(f"{protocol}: {what} gives an all-zero shared secret")
    return shared


class NtorHandshake:
    """One client ntor handshake with one relay; :meth:`complete` may be called again (it keeps
    no state but the ephemeral key), so a failed reply does not spoil a later good one."""

    def __init__(
        self,
        relay_rsa_identity: bytes,
        ntor_onion_key: bytes,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        private_key: bytes | None = None,
    ) -> None:
        """``private_key`` (32 bytes, clamped by X25519) pins the ephemeral key for tests;
        otherwise it is ``rng(32)``."""
        if len(relay_rsa_identity) != ID_LEN:
            raise LocalProtocolError("ntor: the relay RSA identity digest must be 20 bytes")
        if len(ntor_onion_key) != KEY_LEN:
            raise LocalProtocolError("ntor: the relay ntor onion key must be 32 bytes")
        secret = private_key if private_key is not None else rng(KEY_LEN)
        if len(secret) != KEY_LEN:
            raise LocalProtocolError("ntor: the ephemeral private key must be 32 bytes")
        self._id = bytes(relay_rsa_identity)
        self._b = bytes(ntor_onion_key)
        self._x = X25519PrivateKey.from_private_bytes(secret)
        self._x_pub = _public_bytes(self._x.public_key())

    @property
    def htype(self) -> int:
        """The CREATE2 / EXTEND2 HTYPE: 0x0002."""
        return HTYPE_NTOR

    @property
    def onionskin(self) -> bytes:
        """The client HDATA, 84 bytes: ``ID | B | X``."""
        return self._id + self._b + self._x_pub

    def complete(self, reply: bytes) -> HopKeys:
        """Check the server HDATA ``Y [32] | AUTH [32]`` (bytes after those are ignored, as
        tor does) and derive the hop's keys.

        Raises :class:`CircuitHandshakeError` if the reply is short, Y or B gives an all-zero
        shared secret, or AUTH does not match.
        """
        if len(reply) < REPLY_LEN:
            raise CircuitHandshakeError(
                f"ntor: server reply is {len(reply)} bytes, expected {REPLY_LEN}"
            )
        y, auth = bytes(reply[:KEY_LEN]), bytes(reply[KEY_LEN:REPLY_LEN])
        xy = x25519_shared(self._x, y, "the server's Y")
        xb = x25519_shared(self._x, self._b, "the relay's ntor onion key")
        secret_input = xy + xb + self._id + self._b + self._x_pub + y + PROTOID
        verify = _h(secret_input, T_VERIFY)
        auth_input = verify + self._id + self._b + y + self._x_pub + PROTOID + b"Server"
        if not hmac.compare_digest(_h(auth_input, T_MAC), auth):
            raise CircuitHandshakeError("ntor: the server's AUTH does not match")
        return HopKeys.from_material(ntor_kdf(secret_input, HOP_KEY_MATERIAL_LEN))
