"""Path-selection benchmark: time per path (exit, then middle) on a synthetic network the size
of the real one (issue 14: well under 50 ms a path), built and signed by
tests/support/fake_network.py and read through the real parsers. Not part of ``make test``.

    python -m bench.path [--relays 8000] [--choices 2000] [--json]

Timed: building the :class:`~webtunnel_pt.tor.path.PathSelector` (once per view: candidates,
weights, family and subnet keys), the first choice for a port (its exit table is built then),
and the mean of ``--choices`` further choices per port, for a web port, a long-lived port
(Stable hops) and a resolve-only circuit (``port=None``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

from bench.directory import _inputs
from tests.support import fake_network as fake
from webtunnel_pt.tor.consensus import parse_consensus
from webtunnel_pt.tor.consensus_verify import verify_consensus
from webtunnel_pt.tor.microdesc import parse_microdescs
from webtunnel_pt.tor.netview import NetworkView, build_network_view
from webtunnel_pt.tor.path import PathHop, PathSelector

BUDGET_S = 0.050  # issue 14 brief: a path well under 50 ms
PORTS: tuple[int | None, ...] = (443, 22, None)
BRIDGE = PathHop(
    rsa_identity=b"\xbb" * 20,
    ed25519_identity=None,
    address="198.51.100.7",
    ipv6=None,
    family=frozenset(),
    family_ids=frozenset(),
)


def build_view(relays: int, seed: int) -> NetworkView:
    net = fake.make_network(relays, seed=seed)
    consensus = parse_consensus(net.consensus)
    ids, certs, now = _inputs(net)
    verified = verify_consensus(consensus, ids, certs, now)
    wanted = [r.microdesc_digest for r in consensus.routers]
    return build_network_view(verified, parse_microdescs(net.microdescs, wanted).microdescs)


def run(relays: int, choices: int, seed: int) -> dict[str, Any]:
    view = build_view(relays, seed)
    rng = random.Random(seed)
    start = time.perf_counter()
    selector = PathSelector(view)
    report: dict[str, Any] = {
        "relays": len(view.relays),
        "selector_build_ms": round((time.perf_counter() - start) * 1000, 1),
    }
    worst = 0.0
    for port in PORTS:
        name = "any" if port is None else str(port)
        start = time.perf_counter()
        selector.choose(first_hop=BRIDGE, port=port, rng=rng)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(choices):
            selector.choose(first_hop=BRIDGE, port=port, rng=rng)
        mean = (time.perf_counter() - start) / choices
        worst = max(worst, first, mean)
        report[f"port_{name}_first_ms"] = round(first * 1000, 2)
        report[f"port_{name}_mean_us"] = round(mean * 1e6, 1)
    report["within_budget"] = worst <= BUDGET_S
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--relays", type=int, default=fake.DEFAULT_RELAYS)
    parser.add_argument("--choices", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(args.relays, args.choices, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:26} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
