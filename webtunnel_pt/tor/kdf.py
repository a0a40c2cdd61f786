"""KDF-TOR: ``K = H(K0 | 00) | H(K0 | 01) | ...``, H = SHA-1 (tor-link.md §5, tor-spec §5.2.1).

Sans-I/O.
"""

from __future__ import annotations

import hashlib

from webtunnel_pt.errors import LocalProtocolError

SHA1_LEN = 20
#: The counter is one byte: at most 256 blocks.
MAX_KDF_TOR_BYTES = 256 * SHA1_LEN


def kdf_tor(k0: bytes, length: int) -> bytes:
    """The first ``length`` bytes of KDF-TOR keyed with ``k0``."""
    if not 0 <= length <= MAX_KDF_TOR_BYTES:
        raise LocalProtocolError(f"KDF-TOR yields at most {MAX_KDF_TOR_BYTES} bytes")
    blocks = (length + SHA1_LEN - 1) // SHA1_LEN
    out = b"".join(hashlib.sha1(k0 + bytes([i])).digest() for i in range(blocks))
    return out[:length]
