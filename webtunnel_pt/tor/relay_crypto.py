"""Relay cell crypto: AES-128-CTR layers and running SHA-1 digests (tor-link.md §7.2, §7.3;
tor-spec §5.5, §6.1).

    crypto = RelayCrypto()
    crypto.add_hop(keys)                               # one per hop, first hop first
    wire = crypto.encrypt_outbound(payload, hop=-1)    # digest for that hop, then all layers
    inbound = crypto.decrypt_inbound(wire)             # -> InboundRelay(hop, payload, digest)
    done, error = crypto.decrypt_inbound_batch(wires)  # the same for cells that came together

Each hop has one AES-128-CTR stream per direction (IV 0), continuous for the life of the
circuit: a persistent OpenSSL CTR context per hop and direction, so a layer is one C call.
The running SHA-1 digests are checked per hop on a copy ("recognized" is 0 and the first 4
bytes of the digest match) that replaces the hop's digest only when it matches.

The keystreams are not rolled back. Inbound, every hop up to the one that recognizes a cell
advances by 509 bytes; a cell that no hop recognizes has advanced them all, and the circuit's
keystreams are no longer in step with the relays'. That cell is a protocol violation
(:class:`LinkProtocolError`), and the caller must tear the circuit down and never decrypt
another cell on it: :meth:`Circuit.receive_cell` destroys the circuit on it, and a destroyed
circuit drops every later cell. tor does the same (it closes the circuit, no rollback).

:meth:`RelayCrypto.decrypt_inbound_batch` peels the cells of one read together: one CTR call
per hop for all the cells still travelling (a stream cipher: the keystream is the same whether
it is applied cell by cell or to the cells joined), then the Recognized and digest checks cell
by cell, in order. Its results are exactly :meth:`~RelayCrypto.decrypt_inbound`'s, one cell
after the other, up to the first cell no hop recognizes.

Sans-I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from webtunnel_pt.errors import LinkProtocolError, LocalProtocolError
from webtunnel_pt.tor.cells import PAYLOAD_LEN
from webtunnel_pt.tor.onionskin import HopKeys

AES_BLOCK = 16
_ZERO_IV = bytes(AES_BLOCK)
_ZERO_DIGEST = bytes(4)
#: The relay header's Recognized (bytes 1-2) and Digest (bytes 5-8) fields (§7.1).
_DIGEST_START, _DIGEST_END = 5, 9


class AesCtr:
    """AES-128-CTR with a 16-byte zero IV; ``process`` encrypts = decrypts and advances the
    keystream (one OpenSSL context, so it cannot be copied or rolled back)."""

    def __init__(self, key: bytes) -> None:
        context = Cipher(algorithms.AES(key), modes.CTR(_ZERO_IV)).encryptor()
        self.process: Callable[[bytes], bytes] = context.update


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


class InboundRelay(NamedTuple):
    """A relay cell a hop recognized: ``payload`` is plaintext, ``digest`` the hop's full
    backward digest right after this cell (what an authenticated SENDME carries). A named
    tuple: one is made per cell received."""

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
        if len(payload) != PAYLOAD_LEN or payload[_DIGEST_START:_DIGEST_END] != _ZERO_DIGEST:
            raise LocalProtocolError("outbound relay payload must be 509 bytes, digest zeroed")
        hops = self.hops
        target = hop % len(hops)
        digest = hops[target].forward_digest
        digest.update(payload)
        cell: bytes = payload[:_DIGEST_START] + digest.digest()[:4] + payload[_DIGEST_END:]
        for index in range(target, -1, -1):
            cell = hops[index].forward.process(cell)
        return cell

    def decrypt_inbound(self, cell: bytes) -> InboundRelay:
        """Peel layers until a hop recognizes the cell (§7.3, receiving). A cell no hop
        recognizes raises :class:`LinkProtocolError` and leaves the keystreams advanced: the
        circuit must be torn down (see the module docstring)."""
        if len(cell) != PAYLOAD_LEN:
            raise LinkProtocolError("relay payload is not 509 bytes")
        index = 0
        for hop in self.hops:
            cell = hop.backward.process(cell)
            if cell[1] == 0 and cell[2] == 0:  # Recognized is zero: maybe ours (§7.3)
                full = self._recognized(hop, cell)
                if full is not None:
                    return InboundRelay(index, cell, full)
            index += 1
        raise LinkProtocolError("relay cell not recognized by any hop")

    def decrypt_inbound_batch(
        self, cells: list[bytes]
    ) -> tuple[list[InboundRelay], LinkProtocolError | None]:
        """:meth:`decrypt_inbound` for each of ``cells`` in order: the recognized cells up to
        the first that no hop recognizes, and that violation (None if every cell was
        recognized). After a violation the keystreams are out of step, as with one cell."""
        for cell in cells:
            if len(cell) != PAYLOAD_LEN:
                return [], LinkProtocolError("relay payload is not 509 bytes")
        count = len(cells)
        found: list[InboundRelay | None] = [None] * count
        travelling = list(range(count))  # cells no hop has recognized yet, in order
        blob = b"".join(cells)
        for index, hop in enumerate(self.hops):
            blob = hop.backward.process(blob)
            left: list[int] = []
            for position, cell_index in enumerate(travelling):
                start = position * PAYLOAD_LEN
                if blob[start + 1] == 0 and blob[start + 2] == 0:  # maybe ours (§7.3)
                    cell = blob[start : start + PAYLOAD_LEN]
                    full = self._recognized(hop, cell)
                    if full is not None:
                        found[cell_index] = InboundRelay(index, cell, full)
                        continue
                left.append(cell_index)
            if not left:
                break
            if len(left) != len(travelling):  # some stopped here: the rest go on, joined
                keep = {cell_index: position for position, cell_index in enumerate(travelling)}
                blob = b"".join(
                    blob[keep[i] * PAYLOAD_LEN : (keep[i] + 1) * PAYLOAD_LEN] for i in left
                )
            travelling = left
        done: list[InboundRelay] = []
        for inbound in found:
            if inbound is None:
                return done, LinkProtocolError("relay cell not recognized by any hop")
            done.append(inbound)
        return done, None

    @staticmethod
    def _recognized(hop: HopCrypto, cell: bytes) -> bytes | None:
        """The hop's full digest after ``cell`` when its Digest field matches (the hop's
        running digest then moves on), else None."""
        digest = hop.backward_digest.copy()
        digest.update(cell[:_DIGEST_START] + _ZERO_DIGEST + cell[_DIGEST_END:])
        full: bytes = digest.digest()
        if hmac.compare_digest(full[:4], cell[_DIGEST_START:_DIGEST_END]):
            hop.backward_digest = digest
            return full
        return None
