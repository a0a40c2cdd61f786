"""``make bench-tor``: the built-in Tor client against a real tor, on the private Tor network of
tests/e2e, in one run.

Set-up (everything on 127.0.0.1, torn down at the end; tests/e2e/stack.py)::

    bench ──SOCKS5──> webtunnel-pt socks (built-in client) ──┐
    bench ──SOCKS5──> tor ──> webtunnel-pt (managed mode) ───┴─> nginx ─> WebTunnel server
                                                                 ─> bridge ─> middle ─> exit
                                                                 ─> page server (bench)

Both clients use the same bridge line and the network's own authorities, and are measured the
same way through their SOCKS port:

- bootstrap, cold (empty state/data directory) and warm (the directory cache of the cold run):
  process start to ``SOCKS proxy ready`` (built-in) or ``Bootstrapped 100%`` (tor);
- time to first byte: SOCKS CONNECT to the page server, GET, first byte of the answer
  (median of several, each on a fresh stream);
- throughput: the median of ``--downloads`` (3) downloads of 50 MiB through the three hops;
- CPU time of the client during a download (median), the whole machine's (every process: the
  relays, nginx, the WebTunnel server), and RSS after the warm bootstrap: the built-in
  client's process; tor and its PT child.

Ratios are built-in / tor (time: < 1 is faster; throughput and RSS: > 1 is more). The issue's
targets (bootstrap no slower than tor, throughput at least 0.8 of tor's) are figures, not
assertions.

    python -m bench.tor_client [--size-mib 50] [--ttfb-samples 5] [--downloads 3]
        [--update-doc FILE] [--builtin-only] [--profile FILE] [--syscalls FILE]

``--builtin-only`` measures the built-in client alone (no table, no doc); ``--profile FILE``
samples the built-in client with py-spy (``pip install py-spy``) during the download and writes
its collapsed stacks to FILE (flame-graph input; the summary of the hottest frames is printed);
``--syscalls FILE`` counts its system calls then (``strace -c``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.client import PT_ENV_VAR, find_pt, pt_argv, start_client
from tests.e2e.ports import LOOPBACK
from tests.e2e.procs import terminate
from tests.e2e.stack import Page, Stack, running_stack, serving_page
from tests.support.pt_process import pt_command
from tests.support.socks_client import socks_connect

MIB = 1024 * 1024
BOOTSTRAP_TIMEOUT_S = 180.0
STREAM_TIMEOUT_S = 120.0
READY = re.compile(r"SOCKS proxy ready on \S+:(\d+)")
DOC_HEADING = "## Benchmark: `make bench-tor`"


# ---- the two clients -----------------------------------------------------------------------


@dataclass
class Running:
    """A client up and bootstrapped: its SOCKS port, the pids whose RSS counts, a stop."""

    socks_port: int
    bootstrap_s: float
    pids: list[int]
    stop: Callable[[], None]


def _client_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOR_PT_")}
    env["SSL_CERT_FILE"] = str(stack.ca_pem)
    return env


@contextmanager
def builtin_client(stack: Stack, state_dir: Path, log_path: Path) -> Iterator[Running]:
    """``webtunnel-pt socks`` with the network's authorities; timed to its ready line."""
    words = ["--bridge", stack.bridge_line(), "--no-distinct-subnets", "--allow-internal-addresses"]
    for line in stack.network.dir_authority_lines:
        words += ["--dir-authority", line]
    words += ["--state-dir", str(state_dir), "--listen", f"{LOOPBACK}:0"]
    with log_path.open("ab") as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            [*pt_command(), "socks", *words],
            stdout=subprocess.PIPE,
            stderr=err,
            env=_client_env(stack),
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def stop() -> None:
        terminate(proc)
        reader.join(timeout=10)

    try:
        port = None
        while port is None:
            text = lines.get(timeout=BOOTSTRAP_TIMEOUT_S)
            if text is None:
                raise RuntimeError(f"webtunnel-pt socks exited {proc.wait()}; see {log_path}")
            match = READY.search(text)
            if match:
                port = int(match.group(1))
        yield Running(port, time.monotonic() - start, [proc.pid], stop)
    finally:
        stop()


def tor_pt() -> str:
    """The PT executable tor launches (one path: tor's ClientTransportPlugin takes argv)."""
    found = find_pt()
    if found is None:
        raise SystemExit(f"no webtunnel-pt executable: set {PT_ENV_VAR} or install the package")
    return found


@contextmanager
def tor_client(stack: Stack, data_dir: Path) -> Iterator[Running]:
    """tor with ``UseBridges 1`` and webtunnel-pt as its managed PT; timed to 100 %. A
    previous run's log is moved aside (its ``Bootstrapped 100%`` would end the wait at once)."""
    for name in ("tor.log", "pt.log"):
        old = data_dir / name
        if old.exists():
            old.rename(data_dir / f"{name}.{time.time_ns()}")
    start = time.monotonic()
    client = start_client(
        stack.network,
        data_dir,
        [stack.bridge_line()],
        pt_argv(tor_pt(), data_dir, "notice"),
        env={"SSL_CERT_FILE": str(stack.ca_pem)},
    )
    try:
        client.wait_bootstrapped(BOOTSTRAP_TIMEOUT_S)
        elapsed = time.monotonic() - start
        yield Running(client.socks_port, elapsed, client.processes.pids(), client.stop)
    finally:
        client.stop()


# ---- measurements --------------------------------------------------------------------------


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
        total += int(match.group(1)) if match else 0
    return total


def _get(socks_port: int, page: Page, path: str) -> tuple[float, float, int]:
    """(seconds to the first byte, seconds to the last, body bytes) of one GET."""
    start = time.monotonic()
    rep, sock = socks_connect(socks_port, None, STREAM_TIMEOUT_S, target=(LOOPBACK, page.port))
    if rep != 0:
        raise RuntimeError(f"SOCKS CONNECT refused: REP={rep}")
    with sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {LOOPBACK}:{page.port}\r\n\r\n".encode())
        first = sock.recv(65536)
        ttfb = time.monotonic() - start
        received = len(first)
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    return ttfb, time.monotonic() - start, received


def time_to_first_byte(socks_port: int, page: Page, samples: int) -> float:
    return statistics.median(_get(socks_port, page, "/")[0] for _ in range(samples))


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy so far (/proc/stat: every process, the
    relays, nginx and the WebTunnel server too, and the kernel's network work for them)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (their threads included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


@contextmanager
def syscalls_counted(pid: int, out: Path | None) -> Iterator[None]:
    """``strace -c`` on ``pid`` (all threads) into ``out`` while the block runs."""
    if out is None:
        yield
        return
    proc = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", str(out)])
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        print(out.read_text())


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy samples ``pid`` (all its threads) into ``out`` (raw collapsed stacks) while the
    block runs; nothing without ``out``."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "-o", str(out)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        print_profile(out)


def print_profile(path: Path, top: int = 25) -> None:
    """The frames with the most samples, self and total, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    print(f"[profile] {samples} samples in {path}")
    for title, counter in (("self", own), ("total", total)):
        print(f"[profile] top {top} by {title}:")
        for frame, count in counter.most_common(top):
            print(f"  {100 * count / max(samples, 1):5.1f}%  {frame}")


def throughput_mib_s(socks_port: int, page: Page) -> float:
    ttfb, total, received = _get(socks_port, page, "/big")
    if received < len(page.big_body):
        raise RuntimeError(f"download cut short: {received} of {len(page.big_body)} bytes")
    return len(page.big_body) / MIB / (total - ttfb)


@dataclass
class Figures:
    cold_s: float = 0.0
    warm_s: float = 0.0
    ttfb_s: float = 0.0
    mib_s: float = 0.0
    cpu_s: float = 0.0
    machine_cpu_s: float = 0.0  # every process on the machine: relays, nginx, the bench too
    rss_kib: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Contender:
    """A client under measurement: how to start it, what was measured."""

    name: str
    start: Callable[[str], AbstractContextManager[Running]]
    figures: Figures = field(default_factory=Figures)
    runs: list[tuple[float, float, float]] = field(default_factory=list)  # MiB/s, CPU, machine


def measure(
    contenders: list[Contender],
    page: Page,
    samples: int,
    profile: Path | None = None,
    syscalls: Path | None = None,
    downloads: int = 3,
) -> None:
    """Each client's cold bootstrap; then all of them warm (same state) at once, and their
    downloads taken in turns (A B A B ...), so a slow spell of the shared machine falls on
    each alike. Throughput and CPU are the medians of ``downloads`` downloads; ``profile``
    and ``syscalls`` watch the first client's first process during them."""
    for contender in contenders:
        with contender.start("cold") as cold:
            contender.figures.cold_s = cold.bootstrap_s
    with contextlib.ExitStack() as running:
        warm: list[Running] = []
        for contender in contenders:
            client = running.enter_context(contender.start("warm"))
            contender.figures.warm_s = client.bootstrap_s
            contender.figures.rss_kib = rss_kib(client.pids)
            warm.append(client)
        for contender, client in zip(contenders, warm, strict=True):
            contender.figures.ttfb_s = time_to_first_byte(client.socks_port, page, samples)
        with profiled(warm[0].pids[0], profile), syscalls_counted(warm[0].pids[0], syscalls):
            for _ in range(downloads):
                for contender, client in zip(contenders, warm, strict=True):
                    cpu_before = cpu_seconds(client.pids)
                    machine_before = machine_cpu_seconds()
                    mib_s = throughput_mib_s(client.socks_port, page)
                    cpu_s = cpu_seconds(client.pids) - cpu_before
                    contender.runs.append((mib_s, cpu_s, machine_cpu_seconds() - machine_before))
    for contender in contenders:
        figures = contender.figures
        figures.mib_s, figures.cpu_s, figures.machine_cpu_s = (
            statistics.median(column) for column in zip(*contender.runs, strict=True)
        )
        figures.notes.append(" ".join(f"{mib_s:.2f}" for mib_s, _, _ in contender.runs))
        print(
            f"{contender.name:9} cold {figures.cold_s:6.2f} s  warm {figures.warm_s:6.2f} s  "
            f"TTFB {figures.ttfb_s * 1000:7.1f} ms  {figures.mib_s:6.2f} MiB/s  "
            f"RSS {figures.rss_kib / 1024:6.1f} MiB  download CPU {figures.cpu_s:6.2f} s "
            f"(machine {figures.machine_cpu_s:6.2f} s); MiB/s of each download: "
            f"{figures.notes[-1]}",
            flush=True,
        )


# ---- report --------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def table(builtin: Figures, tor: Figures, size_mib: int) -> str:
    rows = [
        ("bootstrap, cold (s)", builtin.cold_s, tor.cold_s, "≤ 1"),
        ("bootstrap, warm (s)", builtin.warm_s, tor.warm_s, "≤ 1"),
        ("time to first byte (ms)", builtin.ttfb_s * 1000, tor.ttfb_s * 1000, ""),
        (f"throughput, {size_mib} MiB (MiB/s)", builtin.mib_s, tor.mib_s, "≥ 0.8"),
        ("CPU during the download (s)", builtin.cpu_s, tor.cpu_s, ""),
        ("machine CPU during the download (s)", builtin.machine_cpu_s, tor.machine_cpu_s, ""),
        ("RSS after bootstrap (MiB)", builtin.rss_kib / 1024, tor.rss_kib / 1024, ""),
    ]
    lines = [
        "| | built-in | tor + PT | built-in / tor | target |",
        "|---|---:|---:|---:|---|",
    ]
    for label, ours, theirs, target in rows:
        lines.append(f"| {label} | {ours:.2f} | {theirs:.2f} | {ratio(ours, theirs)} | {target} |")
    return "\n".join(lines)


def machine() -> str:
    tor_version = subprocess.run(["tor", "--version"], capture_output=True, text=True, check=False)
    first = tor_version.stdout.splitlines()[0] if tor_version.stdout else "tor ?"
    cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, {first}"


def previous_run(old: str) -> str:
    """The table of the run a new section replaces, with its date: kept as "the run before"."""
    when = re.search(r"Last run ([^(]+?) \(", old)
    table = re.search(r"^\|.*?(?=\n(?!\|)|\Z)", old[when.end() :] if when else "", re.S | re.M)
    if when is None or table is None:
        return ""
    return (
        f"The run before, {when.group(1)} (the machine is shared with other jobs, so figures "
        f"move between runs):\n\n{table.group(0).rstrip()}\n"
    )


def update_doc(path: Path, text: str) -> None:
    """Replace the benchmark section (heading to the next ``## ``), keeping its table as the
    run before; or append the section."""
    doc = path.read_text() if path.exists() else ""
    start = doc.find(DOC_HEADING)
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        end = doc.find("\n## ", start + len(DOC_HEADING))
        before = previous_run(doc[start : end if end >= 0 else len(doc)])
        text = text + ("\n" + before if before else "")
        doc = doc[:start] + text + (doc[end + 1 :] if end >= 0 else "")
    path.write_text(doc)


def section(result: str, size_mib: int, samples: int, downloads: int, runs: str) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{DOC_HEADING}

`make bench-tor` (`bench/tor_client.py`) runs the built-in client (`webtunnel-pt socks`) and a
real tor with the same bridge through `webtunnel-pt` in managed mode on the private Tor
network of the e2e tests (3 authorities, 2 middles, 2 exits, the bridge behind nginx and a
WebTunnel server; all on 127.0.0.1). Both are measured through their SOCKS port: bootstrap
cold (empty directory cache) and warm (the cache of the cold run) to the first usable circuit,
one client after the other; then, with both running: time to first byte of a GET on a fresh
stream (median of {samples}), and {downloads} downloads of {size_mib} MiB each through the
three hops, taken in turns (built-in, tor, built-in, ...: a slow spell of the shared machine
falls on both alike; the table gives medians), with the client's CPU time during each (tor +
PT: both processes) and the whole machine's (every process: the relays, nginx, the WebTunnel
server, the bench's reader); RSS after the warm bootstrap. These
are figures, not test assertions. tor's bootstrap includes starting the PT (a Python process)
and its own waits.

Both clients now do what tor 0.4.9 does by default: congestion control with the exit (prop
324, Vegas; XON/XOFF per stream, prop 344) and conflux (prop 329: each download goes over two
circuits to one exit, linked, and the exit sends on whichever has room). The relays' info logs
(`E2E_TOR_LOG=info`) show why conflux matters on this network: the exit's Vegas measures a
minimum RTT of 4-16 ms on an idle circuit and 25-70 ms under load, for tor's client as for
ours, so each circuit's window settles near 200-500 cells; tor's client gets its speed from two
such windows. With one circuit and congestion control the built-in client held 2-4 MiB/s.

What bounds the built-in client is CPU: the machine has 2 cores for everything above, and the
client decrypts two TLS layers and three onion layers per cell in one Python process. Its CPU
for 50 MiB went from 4.3-5.2 s to 3.0-3.8 s this session (tor and its PT: 1.2-1.6 s): one
read's cells of a circuit are decrypted together (one AES-CTR call per hop), the cells of a
read are framed in one pass, and the per-cell objects are named tuples. The queue its slower
processing leaves is what the exit's Vegas sees as a longer round trip. The machine is shared
with other jobs: single downloads moved by 20-40 % between runs on this day, hence the
medians and the turns.

Last run {when} ({machine()}):

{result}

MiB/s of each download: {runs}.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tor_client", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=50, help="download size (default 50)")
    parser.add_argument("--ttfb-samples", type=int, default=5)
    parser.add_argument(
        "--downloads", type=int, default=3, help="downloads per client; medians (default 3)"
    )
    parser.add_argument("--update-doc", type=Path, default=None, metavar="FILE")
    parser.add_argument("--builtin-only", action="store_true", help="skip tor (no table)")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE", help="py-spy")
    parser.add_argument("--syscalls", type=Path, default=None, metavar="FILE", help="strace -c")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-tor-"))
    print(f"[bench-tor] work directory {work}", file=sys.stderr)
    with (
        running_stack(work / "stack") as stack,
        serving_page(big_size=args.size_mib * MIB) as page,
    ):

        def builtin(run: str) -> AbstractContextManager[Running]:
            return builtin_client(stack, work / "builtin-state", work / f"builtin-{run}.log")

        def tor(run: str) -> AbstractContextManager[Running]:
            return tor_client(stack, work / "tor-data")

        ours = Contender("built-in", builtin)
        theirs = Contender("tor", tor)
        contenders = [ours] if args.builtin_only else [ours, theirs]
        measure(
            contenders,
            page,
            args.ttfb_samples,
            args.profile,
            args.syscalls,
            downloads=args.downloads,
        )
        if args.builtin_only:
            return 0
    result = table(ours.figures, theirs.figures, args.size_mib)
    print(result)
    if args.update_doc is not None:
        runs = f"built-in {ours.figures.notes[-1]}; tor {theirs.figures.notes[-1]}"
        text = section(result, args.size_mib, args.ttfb_samples, args.downloads, runs)
        update_doc(args.update_doc, text)
        print(f"[bench-tor] wrote {args.update_doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
