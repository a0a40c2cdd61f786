"""``make bench``: webtunnel-pt against the official Go client and a C relay, on loopback.

Set-up (everything on 127.0.0.1, torn down at the end)::

    bench client ──SOCKS5──> webtunnel-pt ──────TLS + upgrade─┐
    bench client ──SOCKS5──> official Go client ──TLS + upgrade┤
    bench client ──HTTP upgrade──> socat ──TLS─────────────────┴─> nginx ──> bench.backend

nginx terminates TLS with a certificate from a test CA made for the run and proxies the secret
path with the ``Upgrade`` headers to :mod:`bench.backend` (sink / source / echo). Baselines: the
official WebTunnel client (Go, ``../shared/peers/bin/webtunnel-client`` or
``$WEBTUNNEL_GO_CLIENT``; skipped, naming the missing file, when absent) run as tor runs a
managed PT, and ``socat TCP-LISTEN:…,fork OPENSSL:…``, for which the bench client writes the
upgrade request itself. Relays alternate within each round so that load from other processes
falls on all; the headline figures are paired ratios (:mod:`bench.report`).

Measured: bulk throughput each way and the CPU each client process spent per GiB; set-up time
(SOCKS connect → first echoed byte); exec → ``CMETHODS DONE``; idle RSS and RSS with many idle
tunnels.

    python -m bench.run [--quick] [--relay-only] [--rounds N] [--pt PATH] [--update-doc FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.report import Results, render, update_doc
from bench.stage import (
    MIB,
    ROOT,
    Opener,
    RunningPt,
    Stage,
    close_now,
    download,
    go_client,
    installed_pt,
    pt_environment,
    pt_opener,
    running_stage,
    setup_time,
    socat_opener,
    start_pt,
    upload,
)
from tests.support.socks_client import recv_exactly

GIB = 1024 * MIB
#: Start-up of the PyInstaller builds is measured too when they exist.
BINARIES = {
    "startup_onefile": ROOT / "dist" / "webtunnel-pt",
    "startup_onedir": ROOT / "dist" / "onedir" / "webtunnel-pt" / "webtunnel-pt",
}


@dataclass(frozen=True)
class Plan:
    transfer_bytes: int = 256 * MIB
    transfer_rounds: int = 7
    setup_connections: int = 60
    startup_runs: int = 20
    idle_tunnels: int = 1000
    #: Throughput, CPU and set-up only (no start-up or memory figures): for trying things.
    relay_only: bool = False

    def describe(self) -> str:
        size = self.transfer_bytes // MIB
        return f"median of {self.transfer_rounds} transfers of {size} MiB each way"


QUICK = Plan(
    transfer_bytes=64 * MIB,
    transfer_rounds=3,
    setup_connections=20,
    startup_runs=5,
    idle_tunnels=200,
)


# ---- measurements --------------------------------------------------------------------------


def measure_relays(
    stage: Stage, clients: dict[str, RunningPt], plan: Plan, results: Results
) -> None:
    """Transfers each way and set-ups, relays alternating; ``clients`` are PT processes by name
    (``pt``, and ``go`` when present), whose CPU is read around each of their transfers."""
    relays: dict[str, Opener] = {
        name: pt_opener(stage, c.socks_port) for name, c in clients.items()
    }
    relays["socat"] = socat_opener(stage)
    for opener in relays.values():  # warm-up: CA store, first fork, nginx upstream
        setup_time(opener)
        upload(opener, 8 * MIB)
        download(opener, 8 * MIB)
    time.sleep(0.2)
    socat_cpu = stage.socat_cpu_s()
    gib = plan.transfer_bytes / GIB
    for _ in range(plan.transfer_rounds):
        for direction, transfer in (("up", upload), ("down", download)):
            for name, opener in relays.items():
                client = clients.get(name)
                before = client.cpu_s() if client else 0.0
                results.add(f"{direction}_{name}", transfer(opener, plan.transfer_bytes))
                if client:
                    results.add(f"cpu_{direction}_{name}", (client.cpu_s() - before) / gib)
    time.sleep(0.2)  # socat's children are counted once the parent has reaped them
    both_ways = 2 * plan.transfer_rounds * gib
    results.figures["socat_cpu_s_per_gib"] = (stage.socat_cpu_s() - socat_cpu) / both_ways
    for _ in range(plan.setup_connections):
        for name, opener in relays.items():
            results.add(f"setup_{name}", setup_time(opener))


def measure_startup(
    command: Sequence[str], env: dict[str, str], log: Path, runs: int
) -> list[float]:
    times = []
    for _ in range(runs):
        pt = start_pt(command, env, log)
        times.append(pt.startup_s)
        pt.stop()
    return times


def measure_memory(
    stage: Stage, command: Sequence[str], env: dict[str, str], log: Path, tunnels: int
) -> dict[str, float]:
    pt = start_pt(command, env, log)
    held: list[socket.socket] = []
    try:
        time.sleep(0.5)  # let start-up garbage settle; nothing else is waited on
        idle = pt.rss_kib()
        opener = pt_opener(stage, pt.socks_port)

        def open_idle() -> socket.socket:
            sock = opener()
            sock.sendall(b"E.")
            if recv_exactly(sock, 1) != b".":
                raise RuntimeError("echo returned something else")
            return sock

        held.append(open_idle())
        one = pt.rss_kib()
        with ThreadPoolExecutor(max_workers=8) as pool:
            held.extend(pool.map(lambda _: open_idle(), range(tunnels - 1)))
        time.sleep(0.5)
        many = pt.rss_kib()
        return {
            "rss_idle_kib": idle,
            "rss_one_kib": one,
            "rss_many_kib": many,
            "per_tunnel_kib": (many - one) / (tunnels - 1),
            "tunnels": tunnels,
        }
    finally:
        for sock in held:
            close_now(sock)
        pt.stop()


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(plan: Plan, command: list[str], workdir: Path) -> Results:
    results = Results(datetime.datetime.now(datetime.UTC), plan.describe(), command)
    results.figures["load_start"] = os.getloadavg()[0]
    raise_fd_limit()
    log = workdir / "pt.log"
    go = go_client()
    if isinstance(go, str):
        results.go_skipped = go
        print(f"bench: skipping the Go client: {go}", file=sys.stderr)
    with running_stage(workdir) as stage:
        env = pt_environment(workdir / "state", stage.tls.ca_pem, workdir / "pycache")
        start_pt(command, env, log).stop()  # compile the byte code once
        clients = {"pt": start_pt(command, env, log)}
        try:
            go_env = pt_environment(workdir / "go-state", stage.tls.ca_pem, None)
            if isinstance(go, Path):
                try:
                    clients["go"] = start_pt([str(go)], go_env, workdir / "go.log")
                except (OSError, RuntimeError) as exc:
                    go = results.go_skipped = f"{go} did not start: {exc}"
                    print(f"bench: skipping the Go client: {go}", file=sys.stderr)
            measure_relays(stage, clients, plan, results)
        finally:
            for client in clients.values():
                client.stop()
        if not plan.relay_only:
            measure_others(plan, command, workdir, stage, env, results)
            if isinstance(go, Path):
                results.samples["startup_go"] = measure_startup(
                    [str(go)], go_env, workdir / "go.log", plan.startup_runs
                )
    results.figures["load_end"] = os.getloadavg()[0]
    return results


def measure_others(
    plan: Plan,
    command: list[str],
    workdir: Path,
    stage: Stage,
    env: dict[str, str],
    results: Results,
) -> None:
    """Start-up of the PT (and of the PyInstaller builds when present) and its memory."""
    log = workdir / "pt.log"
    results.samples["startup"] = measure_startup(command, env, log, plan.startup_runs)
    if command == installed_pt() and "WEBTUNNEL_PT" not in os.environ:
        cold = pt_environment(workdir / "state", stage.tls.ca_pem, None)
        results.samples["startup_no_bytecode"] = measure_startup(
            command, cold, log, max(5, plan.startup_runs // 4)
        )
    for name, binary in BINARIES.items():
        if binary.exists():  # `make binary` / `make binary-onedir` were run
            results.samples[name] = measure_startup([str(binary)], env, log, plan.startup_runs)
    results.figures.update(measure_memory(stage, command, env, log, plan.idle_tunnels))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller run, for trying things")
    parser.add_argument("--relay-only", action="store_true", help="throughput, CPU and set-up only")
    parser.add_argument("--rounds", type=int, help="transfer rounds (default 7, quick 3)")
    parser.add_argument("--pt", help="PT command (default: $WEBTUNNEL_PT or the installed one)")
    parser.add_argument("--update-doc", type=Path, help="rewrite the results block of this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    command = [os.path.abspath(args.pt)] if args.pt else installed_pt()
    plan = QUICK if args.quick else Plan()
    plan = dataclasses.replace(
        plan,
        relay_only=args.relay_only,
        transfer_rounds=args.rounds or plan.transfer_rounds,
    )
    workdir = Path(tempfile.mkdtemp(prefix="webtunnel-bench-"))
    try:
        results = run(plan, command, workdir)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = render(results)
    print(text)
    if args.update_doc:
        update_doc(args.update_doc, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
