"""Demo (`make demo`): private Tor network + nginx + WebTunnel server on 127.0.0.1, then a
tor client bootstrapping through the webtunnel-pt and fetching a page; everything is torn
down at the end.

    python -m tests.e2e.demo [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .client import (
    BOOTSTRAP_TIMEOUT_S,
    TorClient,
    find_pt,
    pt_argv,
    running_client,
)
from .ports import LOOPBACK
from .procs import foreign_sockets, wait_until
from .readiness import BOOTSTRAPPED_100
from .stack import missing_binaries, running_stack, serving_page


def _follow_bootstrap(client: TorClient) -> float:
    """Print each `Bootstrapped N%` line as tor logs it; return the seconds to 100 %."""
    shown = 0

    def show_new() -> bool:
        nonlocal shown
        lines = client.bootstrap_lines()
        for line in lines[shown:]:
            print(f"  tor: {line}")
        shown = len(lines)
        return any(BOOTSTRAPPED_100 in line for line in lines)

    return wait_until(
        show_new, BOOTSTRAP_TIMEOUT_S, "the client to bootstrap", alive=client.child.check_alive
    )


def run(base_dir: Path, pt: str) -> None:
    t0 = time.monotonic()
    with running_stack(base_dir) as stack, serving_page() as page:
        print(f"network + nginx + webtunnel server up in {time.monotonic() - t0:.1f}s")
        bridge = stack.bridge_line()
        print(f"Bridge {bridge.replace(stack.secret_path, '<secret>')}")
        client_dir = base_dir / "client"
        with running_client(
            stack.network,
            client_dir,
            [bridge],
            pt_argv(pt, client_dir, "info"),
            env={"SSL_CERT_FILE": str(stack.ca_pem)},
        ) as client:
            print(f"client bootstrapped in {_follow_bootstrap(client):.1f}s")
            body = client.fetch(LOOPBACK, page.port)
            status = "matches" if body == page.body else "DOES NOT MATCH"
            print(f"fetched {page.url} through tor ({len(body)} bytes, {status}):")
            print(f"  {body[:64].decode(errors='replace')}…")
            leaks = foreign_sockets(stack.network.processes.pids() + client.processes.pids())
            print(f"sockets off loopback: {leaks or 'none'}")
        print("tearing down…")
    print(f"done in {time.monotonic() - t0:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (logs, torrcs)")
    args = parser.parse_args(argv)
    missing = missing_binaries()
    pt = find_pt()
    if missing or pt is None:
        print(
            f"demo needs {', '.join(missing or ['webtunnel-pt (pip install -e .)'])}",
            file=sys.stderr,
        )
        return 2
    print(f"PT: {pt}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep, pt)
    else:
        with tempfile.TemporaryDirectory(prefix="webtunnel-demo-") as tmp:
            run(Path(tmp), pt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
