"""CREATE_FAST / CREATED_FAST (tor-link.md §5, tor-spec §5.1.5).

    hs = CreateFastHandshake()          # X = 20 random bytes (injectable)
    cell payload = hs.onionskin
    keys = hs.complete(created_fast_payload)   # -> HopKeys, or CircuitHandshakeError

Only for the first hop: it authenticates the relay only through the link. Sans-I/O.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from webtunnel_pt.errors import CircuitHandshakeError
from webtunnel_pt.tor.kdf import SHA1_LEN, kdf_tor

#: Df | Db | Kf | Kb after the 20-byte KH (§5).
HOP_KEY_MATERIAL_LEN = 20 + 20 + 16 + 16
CREATE_FAST_LEN = SHA1_LEN
CREATED_FAST_LEN = 2 * SHA1_LEN


@dataclass(frozen=True)
class HopKeys:
    """Digest seeds and AES keys of one hop, forward (client->relay) and backward."""

    df: bytes
    db: bytes
    kf: bytes
    kb: bytes

    @classmethod
    def from_material(cls, material: bytes) -> HopKeys:
        """Split ``Df [20] | Db [20] | Kf [16] | Kb [16]`` (the layout ntor uses too)."""
        if len(material) < HOP_KEY_MATERIAL_LEN:
            raise ValueError("not enough key material")
        return cls(material[0:20], material[20:40], material[40:56], material[56:72])


class CreateFastHandshake:
    """Client side of CREATE_FAST."""

    def __init__(self, x: bytes | None = None, rng: Callable[[int], bytes] = os.urandom) -> None:
        self._x = x if x is not None else rng(CREATE_FAST_LEN)
        if len(self._x) != CREATE_FAST_LEN:
            raise ValueError("CREATE_FAST X must be 20 bytes")

    @property
    def onionskin(self) -> bytes:
        """The CREATE_FAST payload: ``X``."""
        return self._x

    def complete(self, created_fast: bytes) -> HopKeys:
        """Check ``KH`` of ``Y | KH`` and derive the hop's keys (§5)."""
        if len(created_fast) < CREATED_FAST_LEN:
            raise CircuitHandshakeError("CREATED_FAST payload truncated")
        y, kh = created_fast[:SHA1_LEN], created_fast[SHA1_LEN:CREATED_FAST_LEN]
        material = kdf_tor(self._x + y, SHA1_LEN + HOP_KEY_MATERIAL_LEN)
        if not hmac.compare_digest(material[:SHA1_LEN], kh):
            raise CircuitHandshakeError("CREATED_FAST key hash does not match")
        return HopKeys.from_material(material[SHA1_LEN:])
