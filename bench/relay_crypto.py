"""Relay-crypto benchmark: MB/s of relay payload (509-byte cells) through a 3-hop
:class:`~webtunnel_pt.tor.relay_crypto.RelayCrypto`, outbound (digest for the exit, three
layers) and inbound (three layers peeled, the exit's digest checked). Not part of
``make test``.

    python -m bench.relay_crypto [--cells 20000] [--json]

Inbound cells are made beforehand by a relay-side simulation (the exit originates, the middle
and the guard add their layers), so only :meth:`RelayCrypto.decrypt_inbound` is timed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from typing import Any

from webtunnel_pt.tor.cells import (
    MAX_RELAY_DATA,
    PAYLOAD_LEN,
    RelayCell,
    RelayCommand,
    encode_relay_payload,
    with_digest,
)
from webtunnel_pt.tor.onionskin import HopKeys
from webtunnel_pt.tor.relay_crypto import AesCtr, RelayCrypto

HOPS = 3


def _keys(hop: int) -> HopKeys:
    return HopKeys.from_material(hashlib.shake_256(b"bench hop %d" % hop).digest(92))


def _payload(n: int) -> bytes:
    data = (n.to_bytes(4, "big") * (MAX_RELAY_DATA // 4 + 1))[:MAX_RELAY_DATA]
    return encode_relay_payload(RelayCell(RelayCommand.DATA, 1, data))


def _inbound_cells(count: int) -> list[bytes]:
    """What the client receives when the exit sends ``count`` DATA cells."""
    layers = [AesCtr(_keys(hop).kb) for hop in range(HOPS)]
    digest = hashlib.sha1(_keys(HOPS - 1).db)
    cells = []
    for n in range(count):
        payload = _payload(n)
        digest.update(payload)
        cell = with_digest(payload, digest.digest())
        for layer in reversed(layers):
            cell = layer.process(cell)
        cells.append(cell)
    return cells


def _circuit() -> RelayCrypto:
    crypto = RelayCrypto()
    for hop in range(HOPS):
        crypto.add_hop(_keys(hop))
    return crypto


def _mb_per_s(cells: int, seconds: float) -> float:
    return round(cells * PAYLOAD_LEN / seconds / 1e6, 2)


def run(cells: int) -> dict[str, Any]:
    payloads = [_payload(n) for n in range(cells)]
    crypto = _circuit()
    start = time.perf_counter()
    for payload in payloads:
        crypto.encrypt_outbound(payload, hop=-1)
    outbound = time.perf_counter() - start

    inbound_cells = _inbound_cells(cells)
    crypto = _circuit()
    start = time.perf_counter()
    for cell in inbound_cells:
        crypto.decrypt_inbound(cell)
    inbound = time.perf_counter() - start
    return {
        "hops": HOPS,
        "cells": cells,
        "encrypt_outbound_mb_s": _mb_per_s(cells, outbound),
        "decrypt_inbound_mb_s": _mb_per_s(cells, inbound),
        "encrypt_outbound_us_per_cell": round(outbound / cells * 1e6, 2),
        "decrypt_inbound_us_per_cell": round(inbound / cells * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=20000)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(args.cells)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
