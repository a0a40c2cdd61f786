"""Directory benchmark: parse and verify a consensus and microdescriptors the size of the real
network (issue 13: each step <= 1 s, the whole view <= 60 MB), on a synthetic network generated
and signed by tests/support/fake_network.py. Not part of ``make test``.

    python -m bench.directory [--relays 8000] [--authorities 9] [--repeat 3] [--json]

Steps timed (best of ``--repeat``): parse the consensus; verify its signatures and lifetime;
parse the microdescriptors (digests checked against the ``m`` lines); join them into the
network view. Memory: the peak Python allocation (tracemalloc) while doing all four, and what
the verified consensus and the finished view keep. The authority key certificates are handed
to verification as already checked objects, so certificate parsing is not in these figures.

Exits 0 with "skipped: ..." naming the module when the parsers are not importable yet.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import lzma
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import fake_network as fake

MIB = 1024 * 1024
BUDGET_S = 1.0  # issue 13: parsing and verifying each take <= 1 s on this machine
BUDGET_MEMORY_BYTES = 60 * MIB  # issue 13: memory for the whole view <= 60 MB
PARSER_MODULES = (
    "webtunnel_pt.tor.consensus",
    "webtunnel_pt.tor.consensus_verify",
    "webtunnel_pt.tor.microdesc",
    "webtunnel_pt.tor.netview",
)
T = TypeVar("T")


@dataclass(frozen=True)
class CheckedCertificate:
    """An authority key certificate as verification reads it (identity, signing key, expiry)."""

    identity_fingerprint: bytes
    signing_key: rsa.RSAPublicKey
    signing_key_digest: bytes
    expires: float


def _certificates(net: fake.FakeNetwork) -> list[CheckedCertificate]:
    return [
        CheckedCertificate(
            bytes.fromhex(a.v3ident),
            a.keys.signing.public_key(),
            bytes.fromhex(a.keys.signing_key_digest),
            float(net.valid_after + 365 * 86400),
        )
        for a in net.authorities
    ]


def _best(repeat: int, step: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = step()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def _import_parsers() -> dict[str, Any] | str:
    modules = {}
    for name in PARSER_MODULES:
        try:
            modules[name.rsplit(".", 1)[1]] = importlib.import_module(name)
        except ImportError as exc:
            return f"{name} is not importable ({exc})"
    return modules


def _inputs(net: fake.FakeNetwork) -> tuple[list[bytes], list[CheckedCertificate], int]:
    return (
        [bytes.fromhex(a.v3ident) for a in net.authorities],
        _certificates(net),
        net.valid_after + 60,
    )


def _time_steps(parsers: dict[str, Any], net: fake.FakeNetwork, repeat: int) -> dict[str, float]:
    consensus_mod, verify_mod = parsers["consensus"], parsers["consensus_verify"]
    microdesc_mod, netview_mod = parsers["microdesc"], parsers["netview"]
    ids, certs, now = _inputs(net)
    parse_s, consensus = _best(repeat, lambda: consensus_mod.parse_consensus(net.consensus))
    verify_s, verified = _best(
        repeat, lambda: verify_mod.verify_consensus(consensus, ids, certs, now)
    )
    wanted = [r.microdesc_digest for r in consensus.routers]
    micro_s, batch = _best(repeat, lambda: microdesc_mod.parse_microdescs(net.microdescs, wanted))
    view_s, view = _best(repeat, lambda: netview_mod.build_network_view(verified, batch.microdescs))
    if len(view.relays) != len(net.relays) or batch.discarded:
        raise RuntimeError(
            f"view has {len(view.relays)} of {len(net.relays)} relays, "
            f"{batch.discarded} microdescriptors discarded"
        )
    return {
        "parse_consensus_s": parse_s,
        "verify_consensus_s": verify_s,
        "parse_microdescs_s": micro_s,
        "build_view_s": view_s,
    }


def _measure_memory(parsers: dict[str, Any], net: fake.FakeNetwork) -> tuple[int, int]:
    """(peak bytes allocated while building the view from the documents, bytes the verified
    consensus and the view keep), by tracemalloc; the documents themselves are not counted."""
    ids, certs, now = _inputs(net)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    consensus = parsers["consensus"].parse_consensus(net.consensus)
    verified = parsers["consensus_verify"].verify_consensus(consensus, ids, certs, now)
    wanted = [r.microdesc_digest for r in consensus.routers]
    batch = parsers["microdesc"].parse_microdescs(net.microdescs, wanted)
    view = parsers["netview"].build_network_view(verified, batch.microdescs)
    del consensus, batch
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert view is not None
    return peak - base, kept - base


def run(relays: int, authorities: int, repeat: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    net = fake.make_network(relays, seed=seed, n_authorities=authorities)
    report: dict[str, Any] = {
        "relays": relays,
        "authorities": authorities,
        "generate_s": round(time.perf_counter() - t0, 2),
        "consensus_bytes": len(net.consensus),
        "consensus_deflate_bytes": len(zlib.compress(net.consensus)),
        "consensus_lzma_bytes": len(lzma.compress(net.consensus, format=lzma.FORMAT_ALONE)),
        "microdescs_bytes": len(net.microdescs),
    }
    parsers = _import_parsers()
    if isinstance(parsers, str):
        report["skipped"] = parsers
        return report
    timings = _time_steps(parsers, net, repeat)
    peak, kept = _measure_memory(parsers, net)
    report.update(
        {
            **{name: round(seconds, 3) for name, seconds in timings.items()},
            "peak_alloc_mib": round(peak / MIB, 1),
            "view_kept_mib": round(kept / MIB, 1),
            "within_budget": max(timings.values()) <= BUDGET_S and peak <= BUDGET_MEMORY_BYTES,
        }
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--relays", type=int, default=fake.DEFAULT_RELAYS)
    parser.add_argument("--authorities", type=int, default=9, help="the real network has 9")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(args.relays, args.authorities, args.repeat, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:26} {value}")
    if "skipped" in report:
        print(f"skipped: {report['skipped']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
