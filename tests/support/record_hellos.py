"""Record reference ClientHellos and the PT's, in one run, against one loopback recorder.

    python -m tests.support.record_hellos [--no-browsers] [--write]

Clients: Debian's ``curl --http1.1`` (OpenSSL) and ``wget`` (GnuTLS on Debian), headless
Chromium and Firefox ESR when installed, and the PT's dial with each ``utls`` profile. Every
client connects to 127.0.0.1 only; the browsers get a fresh profile, a host-resolver map (or
``localDomains``) for the test name, and a dead proxy for anything else. With ``--write`` the
hellos go to ``tests/data/hellos/<client>.json`` and the table to ``docs/fingerprint.md``
(between the generated-table markers); without it the table is printed.

The integration test :mod:`tests.integration.test_fingerprint` uses :func:`record_curl`,
:func:`record_wget` and :func:`record_pt` the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.clienthello import (
    EXTENSION_NAMES,
    ClientHello,
    HelloRecorder,
    describe,
    ja3,
    ja4,
    ja4_r,
)
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args
from webtunnel_pt.webtunnel.dial import DialOptions, dial_bridge

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "tests" / "data" / "hellos"
DOC = ROOT / "docs" / "fingerprint.md"
SERVER_NAME = "bridge.test"
BEGIN, END = "<!-- BEGIN GENERATED TABLE -->", "<!-- END GENERATED TABLE -->"
#: Bound on one client run; a browser that has not sent a hello by then never will.
CLIENT_TIMEOUT_S = 60.0


def _version(command: list[str], pattern: str = r"(.+)") -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(pattern, out)
    return match.group(1).strip() if match else out.strip().splitlines()[0]


def record_curl(recorder: HelloRecorder) -> tuple[ClientHello, str]:
    url = f"https://{SERVER_NAME}:{recorder.port}/"
    subprocess.run(
        [
            "curl",
            "--http1.1",
            "-sk",
            "-m",
            "10",
            "--resolve",
            f"{SERVER_NAME}:{recorder.port}:127.0.0.1",
            url,
        ],
        capture_output=True,
        timeout=30,
    )
    return recorder.wait_hello(), _version(["curl", "--version"], r"^(curl \S+ .*?OpenSSL/\S+)")


def record_wget(recorder: HelloRecorder) -> tuple[ClientHello, str]:
    # wget has no --resolve: "localhost" gets SNI and resolves to loopback (IPv4 forced).
    url = f"https://localhost:{recorder.port}/"
    subprocess.run(
        [
            "wget",
            "-4",
            "-q",
            "-T",
            "10",
            "-t",
            "1",
            "--no-check-certificate",
            "-O",
            "/dev/null",
            url,
        ],
        capture_output=True,
        timeout=30,
    )
    return recorder.wait_hello(), _version(["wget", "--version"], r"^(GNU Wget \S+)")


def record_pt(recorder: HelloRecorder, utls: str | None) -> ClientHello:
    args = [
        ("url", f"https://{SERVER_NAME}:{recorder.port}/path"),
        ("addr", f"127.0.0.1:{recorder.port}"),
    ]
    if utls is not None:
        args.append(("utls", utls))
    config = bridge_config_from_args(BridgeArgs(args))

    async def dial() -> None:
        with contextlib.suppress(Exception):
            tunnel = await dial_bridge(config, DialOptions(timeout_s=10))
            tunnel.writer.transport.abort()

    asyncio.run(dial())
    return recorder.wait_hello()


def record_chromium(recorder: HelloRecorder) -> tuple[ClientHello, str] | None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--host-resolver-rules=MAP {SERVER_NAME} 127.0.0.1, MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            f"--proxy-bypass-list={SERVER_NAME}",
            "--dump-dom",
            f"https://{SERVER_NAME}:{recorder.port}/",
        ]
        subprocess.run(command, capture_output=True, timeout=CLIENT_TIMEOUT_S)
    return recorder.wait_hello(), _version([binary, "--version"], r"(Chromium \S+)")


#: Firefox preferences: the test name resolves locally, everything else meets a dead proxy, and
#: the background services (updates, telemetry, safe browsing, remote settings, DoH) stay off.
FIREFOX_PREFS: dict[str, Any] = {
    "network.dns.localDomains": SERVER_NAME,
    "network.dns.disableIPv6": True,
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.no_proxies_on": SERVER_NAME,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "browser.shell.checkDefaultBrowser": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.search.update": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.newtabpage.enabled": False,
    "browser.aboutwelcome.enabled": False,
    "browser.region.update.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "security.OCSP.enabled": 0,
    "security.remote_settings.crlite_filters.enabled": False,
}


def record_firefox(recorder: HelloRecorder) -> tuple[ClientHello, str] | None:
    binary = shutil.which("firefox-esr") or shutil.which("firefox")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as profile:
        prefs = "".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items()
        )
        Path(profile, "user.js").write_text(prefs)
        proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-remote",
                "--profile",
                profile,
                f"https://{SERVER_NAME}:{recorder.port}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            hello = recorder.wait_hello(CLIENT_TIMEOUT_S)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return hello, _version([binary, "--version"], r"(Mozilla Firefox \S+)")


# -- data files and the doc ----------------------------------------------------------------------


def save(name: str, client: str, hello: ClientHello, raw: bytes) -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    record = {"client": client, "ja4": ja4(hello), "ja4_r": ja4_r(hello), "ja3": ja3(hello)}
    record |= {"hello": hello.to_json(), "raw_hex": raw.hex()}
    (DATA_DIR / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


def load(name: str) -> tuple[ClientHello, dict[str, Any]]:
    record = json.loads((DATA_DIR / f"{name}.json").read_text())
    return ClientHello.from_json(record["hello"]), record


def _ext_names(values: set[int]) -> str:
    return ", ".join(f"{EXTENSION_NAMES.get(v, f'0x{v:04x}')}" for v in sorted(values)) or "—"


def _parts_match(ours: ClientHello, theirs: ClientHello) -> str:
    a, b = ja4(ours).split("_"), ja4(theirs).split("_")
    return " ".join(f"{p}:{'=' if x == y else '≠'}" for p, x, y in zip("abc", a, b, strict=True))


def table(rows: list[tuple[str, str, ClientHello]], pairs: list[tuple[str, str]]) -> str:
    lines = ["| name | client | JA4 | JA3 |", "| --- | --- | --- | --- |"]
    for name, client, hello in rows:
        lines.append(f"| {name} | {client} | `{ja4(hello)}` | `{ja3(hello)}` |")
    lines += [
        "",
        "| PT profile | compared with | JA4 parts | only the reference sends | only the PT sends | other differences |",
    ]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    by_name = {name: hello for name, _, hello in rows}
    for ours_name, ref_name in pairs:
        if ours_name not in by_name or ref_name not in by_name:
            continue
        ours, ref = by_name[ours_name], by_name[ref_name]
        strip = {e for e in ours.extensions + ref.extensions if (e & 0x0F0F) == 0x0A0A}
        only_ref = set(ref.extensions) - set(ours.extensions) - strip
        only_ours = set(ours.extensions) - set(ref.extensions) - strip
        other = [
            k
            for k in describe(ours)
            if k not in ("ja4", "ja3", "extensions") and describe(ours)[k] != describe(ref)[k]
        ]
        lines.append(
            f"| {ours_name} | {ref_name} | {_parts_match(ours, ref)} | {_ext_names(only_ref)} "
            f"| {_ext_names(only_ours)} | {', '.join(other) or '—'} |"
        )
    return "\n".join(lines)


PAIRS = [("pt-none", "curl"), ("pt-chrome", "chromium"), ("pt-firefox", "firefox")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browsers", action="store_true")
    parser.add_argument("--write", action="store_true", help="update tests/data/hellos and the doc")
    opts = parser.parse_args(argv)
    rows: list[tuple[str, str, ClientHello]] = []

    def run(name: str, record: Callable[[HelloRecorder], tuple[ClientHello, str] | None]) -> None:
        # A recorder per client: browsers retry, and their later hellos must not shift the rest.
        with HelloRecorder() as recorder:
            got = record(recorder)
            if got is None:
                print(f"{name}: not installed; skipped", file=sys.stderr)
                return
            rows.append((name, got[1], got[0]))
            if opts.write:
                save(name, got[1], got[0], recorder.last_raw)

    run("curl", record_curl)
    if shutil.which("wget"):
        run("wget", record_wget)
    if not opts.no_browsers:
        run("chromium", record_chromium)
        run("firefox", record_firefox)
    for profile, utls in (
        ("none", None),
        ("chrome", "hellochrome_auto"),
        ("firefox", "hellofirefox_auto"),
    ):
        client = f"webtunnel-pt utls={utls or '(absent)'}"
        run(f"pt-{profile}", lambda rec, utls=utls, client=client: (record_pt(rec, utls), client))
    text = table(rows, PAIRS)
    if opts.write:
        doc = DOC.read_text() if DOC.exists() else f"{BEGIN}\n{END}\n"
        head, _, rest = doc.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
