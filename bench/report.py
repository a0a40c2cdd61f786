"""The bench's results and their Markdown report (the block ``--update-doc`` writes into
``docs/performance.md``).

    results = Results(started, plan_description, command)
    results.add("up_pt", 7.1e8)                      # one sample
    print(render(results))

Throughput and set-up compare the PT with each baseline that ran (the official Go client when
present, socat always) as *paired* ratios: each PT transfer against the baseline's transfer
right after it, median over the rounds; on a shared machine that is far steadier than a ratio
of medians.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import ssl
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
DOC_BEGIN = "<!-- bench:begin -->"
DOC_END = "<!-- bench:end -->"
#: Baselines in report order, with their labels.
BASELINES = {"go": "Go client", "socat": "socat"}


@dataclass
class Results:
    started: datetime.datetime
    #: e.g. "7 transfers of 256 MiB each way"
    plan: str
    command: list[str]
    #: name -> samples (bytes/s for throughput, seconds for times, s/GiB for CPU)
    samples: dict[str, list[float]] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    #: Why the Go client was not measured, when it was not.
    go_skipped: str = ""

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def paired(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    socat = subprocess.run(["socat", "-V"], capture_output=True, text=True).stdout
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "OpenSSL (Python ssl)": ssl.OPENSSL_VERSION,
        "socat": next((ln.split()[2] for ln in socat.splitlines() if "version" in ln), "?"),
        "nginx": nginx.strip().rsplit("/", 1)[-1],
    }


def _relay_rows(results: Results, baselines: list[str]) -> list[str]:
    s = results.samples
    med = statistics.median
    header = ["figure", "webtunnel-pt", *(BASELINES[b] for b in baselines)]
    header += [f"PT / {BASELINES[b]}" for b in baselines]
    rows = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    for direction, label in (("up", "upload (tor → bridge)"), ("down", "download (bridge → tor)")):
        cells = [
            f"{label}, MiB/s",
            *(f"{med(s[f'{direction}_{n}']) / MIB:.0f}" for n in ["pt", *baselines]),
        ]
        for b in baselines:
            ratios = paired(s[f"{direction}_pt"], s[f"{direction}_{b}"])
            cells.append(f"**{med(ratios):.2f}** ({min(ratios):.2f} to {max(ratios):.2f})")
        rows.append(f"| {' | '.join(cells)} |")
    for q, label in ((0.5, "median"), (0.95, "p95")):
        pick = statistics.median if q == 0.5 else (lambda v, q=q: percentile(v, q))
        ms = {n: pick(s[f"setup_{n}"]) * 1000 for n in ["pt", *baselines]}
        cells = [f"set-up, {label} ms", *(f"{ms[n]:.2f}" for n in ["pt", *baselines])]
        cells += [f"**{ms['pt'] - ms[b]:+.2f} ms**" for b in baselines]
        rows.append(f"| {' | '.join(cells)} |")
    f = results.figures
    for direction in ("up", "down"):
        cpu = {
            n: med(s[f"cpu_{direction}_{n}"]) for n in ("pt", "go") if f"cpu_{direction}_{n}" in s
        }
        cells = [f"CPU s per GiB, {direction}", f"{cpu['pt']:.2f}"]
        cells += [
            f"{cpu['go']:.2f}" if b == "go" else f"{f['socat_cpu_s_per_gib']:.2f} (both ways)"
            for b in baselines
        ]
        cells += [
            f"**{cpu['pt'] / cpu['go']:.2f}**"
            if b == "go"
            else f"{cpu['pt'] / f['socat_cpu_s_per_gib']:.2f}"
            for b in baselines
        ]
        rows.append(f"| {' | '.join(cells)} |")
    return rows


def _targets(results: Results) -> list[str]:
    """Issue 16's targets against the Go client, and the older ones against socat."""
    s = results.samples
    med = statistics.median
    checks: list[tuple[str, bool]] = []
    if "up_go" in s:
        cpu = {k: med(s[k]) for k in ("cpu_up_pt", "cpu_up_go", "cpu_down_pt", "cpu_down_go")}
        up_ratio = med(paired(s["up_pt"], s["up_go"]))
        down_ratio = med(paired(s["down_pt"], s["down_go"]))
        setup = (med(s["setup_pt"]) - med(s["setup_go"])) * 1000
        checks += [
            ("CPU per GiB upload ≤ 0.80 x Go", cpu["cpu_up_pt"] <= 0.80 * cpu["cpu_up_go"]),
            ("CPU per GiB download ≤ Go", cpu["cpu_down_pt"] <= cpu["cpu_down_go"]),
            ("throughput upload ≥ 1.1 x Go (paired)", up_ratio >= 1.1),
            ("throughput download ≥ 1.1 x Go (paired)", down_ratio >= 1.1),
            ("set-up median ≤ Go + 0.5 ms", setup <= 0.5),
        ]
    up_socat = med(paired(s["up_pt"], s["up_socat"]))
    down_socat = med(paired(s["down_pt"], s["down_socat"]))
    setup_socat = (med(s["setup_pt"]) - med(s["setup_socat"])) * 1000
    checks += [
        ("throughput ≥ 0.80 x socat both ways", min(up_socat, down_socat) >= 0.80),
        ("set-up median ≤ socat + 1 ms", setup_socat <= 1.0),
    ]
    return [f"- {'met' if ok else '**not met**'}: {label}" for label, ok in checks]


def render(results: Results) -> str:
    s = results.samples
    med = statistics.median
    f = results.figures
    baselines = [b for b in BASELINES if f"up_{b}" in s]
    load = (
        f"{f['load_start']:.2f} at start, {f['load_end']:.2f} at end"
        if "load_start" in f and "load_end" in f
        else "?"
    )
    lines = [
        f"Run of {results.started:%Y-%m-%d %H:%M} UTC, PT: `{' '.join(results.command)}`",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine().items()),
        f"| load average (1 min) | {load} |",
        "",
        *_relay_rows(results, baselines),
        "",
        *_targets(results),
    ]
    if results.go_skipped:
        lines += ["", f"Go client not measured: {results.go_skipped}."]
    if "startup" in s:
        lines += ["", *_other_rows(results)]
    names = [f"{d}_{n}" for d in ("up", "down") for n in ["pt", *baselines]]
    lines += [
        "",
        f"Throughput: {results.plan}, the relays alternating; CPU of each client process from "
        "/proc (utime + stime), median per transfer; socat's with its reaped children, over "
        "all transfers. Samples (MiB/s): "
        + "; ".join(f"{k} " + ", ".join(f"{v / MIB:.0f}" for v in s[k]) for k in names),
    ]
    if "startup_go" in s:
        lines.append(f"Go client exec → CMETHODS DONE: {med(s['startup_go']) * 1000:.1f} ms.")
    return "\n".join(lines) + "\n"


def _other_rows(results: Results) -> list[str]:
    s = results.samples
    f = results.figures
    med = statistics.median
    rows = [
        "| figure | value | target |",
        "|---|---|---|",
        f"| exec → CMETHODS DONE, median of {len(s['startup'])} "
        f"| {med(s['startup']) * 1000:.0f} ms | ≤ 150 ms |",
    ]
    if "startup_no_bytecode" in s:
        rows.append(
            f"| same without byte-code cache (PYTHONDONTWRITEBYTECODE, editable install), "
            f"median of {len(s['startup_no_bytecode'])} "
            f"| {med(s['startup_no_bytecode']) * 1000:.0f} ms | |"
        )
    for name, label in (("startup_onefile", "one-file"), ("startup_onedir", "one-folder")):
        if name in s:
            rows.append(
                f"| exec → CMETHODS DONE, PyInstaller {label} build, median of {len(s[name])} "
                f"| {med(s[name]) * 1000:.0f} ms | ≤ 400 ms |"
            )
    if "rss_idle_kib" in f:
        rows += [
            f"| idle RSS | {f['rss_idle_kib'] / 1024:.1f} MiB | ≤ 30 MiB |",
            f"| RSS with 1 tunnel | {f['rss_one_kib'] / 1024:.1f} MiB | |",
            f"| RSS with {f['tunnels']:.0f} idle tunnels | {f['rss_many_kib'] / 1024:.1f} MiB | |",
            f"| per idle tunnel | {f['per_tunnel_kib']:.0f} KiB | ≤ 128 KiB |",
        ]
    return rows


def update_doc(path: Path, text: str) -> None:
    doc = path.read_text()
    head, sep, rest = doc.partition(DOC_BEGIN)
    _, sep2, tail = rest.partition(DOC_END)
    if not (sep and sep2):
        raise SystemExit(f"{path} has no {DOC_BEGIN} … {DOC_END} block")
    path.write_text(f"{head}{DOC_BEGIN}\n{text}{DOC_END}{tail}")
