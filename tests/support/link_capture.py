"""The link-protocol data captured from a real tor bridge relay, in tests/data/link/.

tests/data/capture_link.py started a throwaway tor 0.4.9.11 bridge relay on 127.0.0.1 (nickname
LinkCapture, nothing published, keys deleted afterwards), connected to its ORPort with
webtunnel_pt.tor's own channel code (plain TLS 1.3, link protocol 5), verified the CERTS cell,
fetched /tor/server/authority over BEGIN_DIR on a CREATE_FAST circuit and wrote what it saw:

    certs_cell.bin          the CERTS cell payload as received          -> CERTS_CELL
    tls_leaf.der            the relay's TLS leaf certificate            -> TLS_LEAF_DER
    server_descriptor.txt   the bridge's own server descriptor          -> DESCRIPTOR_BYTES/_TEXT
    fingerprint             RSA identity, 40 upper-case hex             -> FINGERPRINT
    fingerprint-ed25519     Ed25519 identity, base64 without padding    -> ED25519_BASE64/_ID
    capture.json            capture time, tor version, link facts       -> CAPTURED_AT

The certificates and the descriptor expire, so tests use CAPTURED_AT as "now".
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from webtunnel_pt.tor.certs import RelayIdentity, parse_certs_cell, verify_certs

LINK_DATA = Path(__file__).resolve().parents[1] / "data" / "link"

CERTS_CELL = (LINK_DATA / "certs_cell.bin").read_bytes()
TLS_LEAF_DER = (LINK_DATA / "tls_leaf.der").read_bytes()
DESCRIPTOR_BYTES = (LINK_DATA / "server_descriptor.txt").read_bytes()
DESCRIPTOR_TEXT = (LINK_DATA / "server_descriptor.txt").read_text()
FINGERPRINT = (LINK_DATA / "fingerprint").read_text().strip()
ED25519_BASE64 = (LINK_DATA / "fingerprint-ed25519").read_text().strip()
ED25519_ID = base64.b64decode(ED25519_BASE64 + "=" * (-len(ED25519_BASE64) % 4))
#: When the data was captured (epoch seconds): the "now" at which all of it is valid.
CAPTURED_AT = float(json.loads((LINK_DATA / "capture.json").read_text())["captured_at"])


def relay_identity() -> RelayIdentity:
    """What the captured CERTS cell proves, verified against the captured TLS leaf and
    fingerprint at CAPTURED_AT."""
    return verify_certs(
        parse_certs_cell(CERTS_CELL),
        tls_leaf_der=TLS_LEAF_DER,
        expected_fingerprint=FINGERPRINT,
        now=CAPTURED_AT,
    )
