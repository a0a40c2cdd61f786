"""Relay cell crypto: AES-128-CTR layers and running SHA-1 digests (tor-link.md §7.2, §7.3;
tor-spec §5.5, §6.1).

    crypto = RelayCrypto()
    crypto.add_hop(keys)                               # one per hop, first hop first
    wire = crypto.encrypt_outbound(payload, hop=-1)    # digest for that hop, then all layers
    inbound = crypto.decrypt_inbound(wire)             # -> InboundRelay(hop, payload, digest)

Keystreams and digests are continuous for the life of the circuit. Inbound processing works
on copies and commits them only once a hop recognizes the cell, so a cell that nobody
recognizes leaves the state untouched (the circuit is torn down anyway).

The CTR keystream is computed from AES-ECB over explicit counter blocks, which makes a
cipher state just (key, offset): cheap to copy, easy to roll back. Sans-I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from webtunnel_pt.errors import LinkProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import (
    PAYLOAD_LEN,
    relay_digest_field,
    relay_recognized,
    with_digest,
)
from webtunnel_pt.tor.onionskin import HopKeys

AES_BLOCK = 16
_ZERO_DIGEST = bytes(4)


class AesCtr:
    """AES-128-CTR with a 16-byte zero IV; ``process`` encrypts = decrypts and advances."""

    def __init__(self, key: bytes, offset: int = 0, _ecb: Any = None) -> None:
        self._key = key
        self._ecb = (
            _ecb if _ecb is not None else Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        )
        self.offset = offset

    def copy(self) -> AesCtr:
        # ECB has no chaining state: the copies can share one encryptor.
        return AesCtr(self._key, self.offset, self._ecb)

    def _keystream(self, length: int) -> bytes:
        first = self.offset // AES_BLOCK
        last = (self.offset + length + AES_BLOCK - 1) // AES_BLOCK
        counters = b"".join(i.to_bytes(AES_BLOCK, "big") for i in range(first, last))
        stream: bytes = self._ecb.update(counters)
        skip = self.offset - first * AES_BLOCK
        return stream[skip : skip + length]

    def process(self, data: bytes) -> bytes:
        stream = self._keystream(len(data))
        self.offset += len(data)
        return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            len(data), "big"
        )


class HopCrypto:
    """One hop's forward and backward cipher and digest (§7.2)."""

    def __init__(
        self,
        forward: AesCtr,
        backward: AesCtr,
        forward_digest: Any,
        backward_digest: Any,
    ) -> None:
        self.forward = forward
        self.backward = backward
        self.forward_digest = forward_digest
        self.backward_digest = backward_digest

    @classmethod
    def from_keys(cls, keys: HopKeys) -> HopCrypto:
        return cls(AesCtr(keys.kf), AesCtr(keys.kb), hashlib.sha1(keys.df), hashlib.sha1(keys.db))


@dataclass(frozen=True)
class InboundRelay:
    """A relay cell a hop recognized: ``payload`` is plaintext, ``digest`` the hop's full
    backward digest right after this cell (what an authenticated SENDME carries)."""

    hop: int
    payload: bytes
    digest: bytes


class RelayCrypto:
    """The crypto state of one circuit, hops in path order."""

    def __init__(self) -> None:
        self.hops: list[HopCrypto] = []

    def add_hop(self, keys: HopKeys) -> None:
        self.hops.append(HopCrypto.from_keys(keys))

    def encrypt_outbound(self, payload: bytes, hop: int = -1) -> bytes:
        """Set the Digest field for ``hop`` and encrypt for it and every hop before it (§7.3)."""
        if not self.hops:
            raise LocalProtocolError("circuit has no hops yet")
        if len(payload) != PAYLOAD_LEN or relay_digest_field(payload) != _ZERO_DIGEST:
            raise LocalProtocolError("outbound relay payload must be 509 bytes, digest zeroed")
        target = hop % len(self.hops)
        digest = self.hops[target].forward_digest
        digest.update(payload)
        cell = with_digest(payload, digest.digest())
        for index in range(target, -1, -1):
            cell = self.hops[index].forward.process(cell)
        return cell

    def decrypt_inbound(self, cell: bytes) -> InboundRelay:
        """Peel layers until a hop recognizes the cell (§7.3, receiving); commit only then."""
        if len(cell) != PAYLOAD_LEN:
            raise LinkProtocolError("relay payload is not 509 bytes")
        ciphers = [hop.backward.copy() for hop in self.hops]
        for index, cipher in enumerate(ciphers):
            cell = cipher.process(cell)
            if relay_recognized(cell) != 0:
                continue
            digest = self.hops[index].backward_digest.copy()
            digest.update(with_digest(cell, _ZERO_DIGEST))
            full = digest.digest()
            if hmac.compare_digest(full[:4], relay_digest_field(cell)):
                for hop, advanced in zip(self.hops[: index + 1], ciphers, strict=False):
                    hop.backward = advanced
                self.hops[index].backward_digest = digest
                return InboundRelay(index, cell, full)
        raise LinkProtocolError("relay cell not recognized by any hop")
