"""Capture link-protocol test data from a real, throwaway tor bridge relay on 127.0.0.1.

    python tests/data/capture_link.py [--out tests/data/link]

Starts `tor` as a bridge relay (ORPort on 127.0.0.1 only, one made-up DirAuthority on an unused
loopback port, UseDefaultFallbackDirs 0, PublishServerDescriptor 0: nothing leaves loopback),
connects to its ORPort with webtunnel_pt.tor's own channel code (plain TLS, no WebTunnel),
verifies the CERTS cell, builds a CREATE_FAST circuit, fetches /tor/server/authority over
BEGIN_DIR, and writes:

    certs_cell.bin          CERTS cell payload as received
    tls_leaf.der            the relay's TLS leaf certificate (what CERTS type 5 certifies)
    fingerprint             RSA identity, 40 hex (tor's own <datadir>/fingerprint value)
    fingerprint-ed25519     Ed25519 identity, base64 (tor's <datadir>/fingerprint-ed25519)
    server_descriptor.txt   the bridge's own server descriptor
    capture.json            capture time (use it as "now" in tests), tor version, link facts

The relay's keys are throwaway: they exist only in a temporary directory removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from webtunnel_pt.tor.channel import handshake_channel, start_inner_tls
from webtunnel_pt.tor.directory import SERVER_AUTHORITY_PATH

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60.0
DESCRIPTOR_TIMEOUT_S = 60.0
POLL_S = 0.1  # polling a child's files: the only signal tor gives
STOP_GRACE_S = 5.0
DEFAULT_OUT = Path(__file__).resolve().parent / "link"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _torrc(data_dir: Path, or_port: int) -> str:
    fake_auth = (
        f"DirAuthority nobody orport={_free_port()} no-v2 v3ident={secrets.token_hex(20).upper()} "
        f"{LOOPBACK}:{_free_port()} {secrets.token_hex(20).upper()}"
    )
    return (
        "\n".join(
            [
                f"DataDirectory {data_dir}",
                "TestingTorNetwork 1",
                "UseDefaultFallbackDirs 0",
                fake_auth,
                "Nickname LinkCapture",
                f"Address {LOOPBACK}",
                f"ORPort {LOOPBACK}:{or_port}",
                "SocksPort 0",
                "AddressDisableIPv6 1",
                "ClientUseIPv6 0",
                f"OutboundBindAddress {LOOPBACK}",
                "BridgeRelay 1",
                "BridgeDistribution none",
                "PublishServerDescriptor 0",
                "AssumeReachable 1",
                "ExitRelay 0",
                "ExitPolicy reject *:*",
                "ContactInfo capture@link.test",
                f"Log notice file {data_dir / 'notice.log'}",
                "RunAsDaemon 0",
            ]
        )
        + "\n"
    )


def _wait(condition: object, what: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if proc.poll() is not None:
            raise RuntimeError(f"tor exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


async def _capture(or_port: int, fingerprint: str) -> dict[str, object]:
    reader, writer = await asyncio.open_connection(LOOPBACK, or_port)
    tls = await start_inner_tls(writer)
    channel = await handshake_channel(reader, writer, tls, expected_fingerprint=fingerprint)
    try:
        deadline = time.monotonic() + DESCRIPTOR_TIMEOUT_S
        while True:  # the descriptor exists a moment after the ORPort opens
            circuit = await channel.create_fast_circuit()
            response = await circuit.fetch_directory(SERVER_AUTHORITY_PATH)
            if response.status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)  # retry pacing, not synchronisation
        if response.status != 200:
            raise RuntimeError(f"/tor/server/authority answered {response.status}")
        return {
            "certs": channel.link.certs_payload,
            "tls_leaf": tls.leaf_der,
            "descriptor": response.body,
            "link_version": channel.link_version,
            "tls_version": tls.version,
        }
    finally:
        await channel.aclose()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def capture(out: Path) -> None:
    tor = shutil.which("tor")
    if tor is None:
        sys.exit("tor is not installed (apt-get install tor)")
    version = subprocess.run([tor, "--version"], capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory(prefix="link-capture-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir(mode=0o700)
        or_port = _free_port()
        (Path(tmp) / "torrc").write_text(_torrc(data_dir, or_port))
        (Path(tmp) / "empty").write_text("")
        argv = [tor, "--defaults-torrc", str(Path(tmp) / "empty"), "-f", str(Path(tmp) / "torrc")]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            fp_file = data_dir / "fingerprint"
            _wait(fp_file.exists, "the fingerprint file", START_TIMEOUT_S, proc)
            _wait(lambda: _accepts(or_port), "the ORPort", START_TIMEOUT_S, proc)
            fingerprint = fp_file.read_text().split()[1]
            ed25519 = (data_dir / "fingerprint-ed25519").read_text().split()[1]
            captured_at = time.time()
            result = asyncio.run(_capture(or_port, fingerprint))
        finally:
            _stop(proc)
    out.mkdir(parents=True, exist_ok=True)
    (out / "certs_cell.bin").write_bytes(result["certs"])  # type: ignore[arg-type]
    (out / "tls_leaf.der").write_bytes(result["tls_leaf"])  # type: ignore[arg-type]
    (out / "server_descriptor.txt").write_bytes(result["descriptor"])  # type: ignore[arg-type]
    (out / "fingerprint").write_text(fingerprint + "\n")
    (out / "fingerprint-ed25519").write_text(ed25519 + "\n")
    meta = {
        "captured_at": int(captured_at),
        "tor_version": version.stdout.strip().splitlines()[0],
        "link_version": result["link_version"],
        "tls_version": result["tls_version"],
    }
    (out / "capture.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"captured from {meta['tor_version']} into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    capture(parser.parse_args().out)


if __name__ == "__main__":
    main()
