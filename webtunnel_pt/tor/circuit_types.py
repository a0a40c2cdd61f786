"""What a circuit is made of besides its cells: random circuit ids (tor-link.md §4.5; tor-spec
§5.1.1), its states, and the handshake duck type CREATE2/EXTEND2 take (ntor, ntor v3).

    circ_id = allocate_circ_id(used_ids, link_version)

Sans-I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Container
from enum import Enum, auto
from typing import Protocol

from webtunnel_pt.errors import LocalProtocolError
from webtunnel_pt.tor.onionskin import HopKeys

__all__ = ["CircuitHandshake", "CircuitState", "Completes", "allocate_circ_id"]

#: Circuit ids with this bit set are ours when we initiated the link (link >= 4, §4.5).
CIRC_ID_HIGH_BIT = 0x80000000
#: Attempts at a free random circuit id before giving up (tor stops after 64 too).
MAX_CIRC_ID_ATTEMPTS = 64


def allocate_circ_id(
    used: Container[int],
    link_version: int,
    randbits: Callable[[int], int] = secrets.randbits,
) -> int:
    """A random unused non-zero circuit id; high bit set from link 4 on (§4.5)."""
    for _ in range(MAX_CIRC_ID_ATTEMPTS):
        if link_version >= 4:
            circ_id = CIRC_ID_HIGH_BIT | randbits(31)
        else:
            circ_id = randbits(16)
        if circ_id != 0 and circ_id not in used:
            return circ_id
    raise LocalProtocolError("no free circuit id")


class CircuitHandshake(Protocol):
    """A CREATE2/EXTEND2 handshake (``NtorHandshake``): type, client data, and the check of the
    server's reply that yields the hop's keys (or raises CircuitHandshakeError)."""

    @property
    def htype(self) -> int: ...

    @property
    def onionskin(self) -> bytes: ...

    def complete(self, reply: bytes) -> HopKeys: ...


class Completes(Protocol):
    def complete(self, reply: bytes) -> HopKeys: ...


class CircuitState(Enum):
    NEW = auto()
    CREATING = auto()
    OPEN = auto()
    DESTROYED = auto()
