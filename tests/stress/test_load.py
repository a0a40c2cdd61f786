"""Load, soak and flood against the PT subprocess on loopback.

The 1000-tunnel test is part of `make test`; the long ones carry the `stress` marker and run
with `make stress`. Figures are printed (run with -s) and collected in docs/robustness.md;
nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import struct
import time

import pytest

from tests.stress.procinfo import fd_count, rss_bytes
from tests.support.pt_process import PtProcess, tor_environment
from tests.support.secrets import SecretPathServer, secret_path
from tests.support.socks_client import recv_exactly, socks_connect
from tests.support.upgrade_server import ScriptedWebServer, pattern
from webtunnel_pt.pt.args import encode_socks_credentials, escape_args


async def open_tunnel(port: int, url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    user, password = encode_socks_credentials(escape_args([("url", url)]))
    writer.write(
        b"\x05\x01\x02"
        + b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password
        + b"\x05\x01\x00\x01" + socket.inet_aton("192.0.2.3") + struct.pack(">H", 443)
    )  # fmt: skip
    head = await reader.readexactly(2 + 2 + 10)
    if head[5] != 0:
        writer.close()
        raise ConnectionError(f"SOCKS reply {head[5]}")
    return reader, writer


async def concurrent_tunnels(
    port: int, url: str, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    gate = asyncio.Semaphore(200)  # the PT is the subject, not our own listen backlog

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            return await open_tunnel(port, url)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def test_1000_concurrent_tunnels_carry_the_right_data(
    pt: PtProcess, tls_server: ScriptedWebServer
) -> None:
    url = f"https://127.0.0.1:{tls_server.port}{secret_path('/echo')}"
    count = 1000

    async def main() -> float:
        started = time.monotonic()
        tunnels = await concurrent_tunnels(pt.socks_port(), url, count)
        elapsed = time.monotonic() - started
        payloads = [
            hashlib.sha256(str(i).encode()).digest() * 32 for i in range(count)
        ]  # 1 KiB each
        for (_, writer), payload in zip(tunnels, payloads, strict=True):
            writer.write(payload)
        echoed = await asyncio.gather(*(reader.readexactly(1024) for reader, _ in tunnels))
        assert echoed == payloads
        for _, writer in tunnels:
            writer.close()
        await asyncio.gather(
            *(writer.wait_closed() for _, writer in tunnels), return_exceptions=True
        )
        return elapsed

    elapsed = asyncio.run(asyncio.wait_for(main(), 240))
    print(f"\n1000 concurrent tunnels opened in {elapsed:.1f} s")


@pytest.mark.stress
def test_10000_sequential_connections_leave_fds_and_rss_flat(
    pki, tls_server: ScriptedWebServer, tmp_path
) -> None:
    """tor closes each connection; over TLS the bridge cannot be told, so each tunnel lives on
    for the half-close idle limit (0.05 s here, so that few overlap and RSS shows leaks rather
    than concurrency) and must then be gone without a trace."""
    url = f"https://127.0.0.1:{tls_server.port}{secret_path('/echo')}"
    pt = PtProcess(
        tor_environment(tmp_path, SSL_CERT_FILE=str(pki.ca_file)), ["--half-close-idle", "0.05"]
    )
    pid = pt.proc.pid
    port = pt.socks_port()

    def settled_fds() -> int:
        # Wait (bounded) until the count has been the same for longer than the idle limit.
        deadline = time.monotonic() + 30
        value, since = fd_count(pid), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < 0.5:
            time.sleep(0.1)
            now = fd_count(pid)
            if now != value:
                value, since = now, time.monotonic()
        return value

    def batch(n: int) -> None:
        for _ in range(n):
            rep, sock = socks_connect(port, {"url": url})
            assert rep == 0
            with sock:
                sock.sendall(b"x")
                assert recv_exactly(sock, 1) == b"x"

    try:
        batch(3000)  # warm-up: caches, allocator arenas grow to their working size
        fds_start, rss_start = settled_fds(), rss_bytes(pid)
        started = time.monotonic()
        batch(7000)
        elapsed = time.monotonic() - started
        fds_end, rss_end = settled_fds(), rss_bytes(pid)
    finally:
        pt.stop()
    print(
        f"\n10000 sequential: {7000 / elapsed:.0f} conn/s; fds {fds_start} -> {fds_end}; "
        f"RSS {rss_start / 2**20:.1f} -> {rss_end / 2**20:.1f} MiB"
    )
    assert fds_end == fds_start
    assert rss_end - rss_start < 8 * 2**20


@pytest.mark.stress
def test_flooding_bridge_is_held_back_by_backpressure(pki, tmp_path) -> None:
    server = SecretPathServer(pki.server_context)
    server.start()
    proc = PtProcess(tor_environment(tmp_path, SSL_CERT_FILE=str(pki.ca_file)))
    try:
        proc.socks_port()  # started and listening
        rss_idle = rss_bytes(proc.proc.pid)
        rep, sock = socks_connect(
            proc.socks_port(), {"url": f"https://127.0.0.1:{server.port}{secret_path('/flood')}"}
        )
        assert rep == 0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        # tor does not read. The flood must stall: wait until the server's count stops moving.
        deadline = time.monotonic() + 30
        last = -1
        while time.monotonic() < deadline:
            time.sleep(0.25)
            if server.flood_sent == last:
                break
            last = server.flood_sent
        stalled_at = server.flood_sent
        rss_held = rss_bytes(proc.proc.pid)
        print(
            f"\nflood stalled after {stalled_at / 2**20:.1f} MiB sent; PT RSS {rss_idle / 2**20:.1f} -> "
            f"{rss_held / 2**20:.1f} MiB"
        )
        assert stalled_at < 64 * 2**20  # bounded buffering end to end, not the whole flood
        assert rss_held - rss_idle < 16 * 2**20
        # And the data held back is intact once tor reads again.
        expected = pattern(64 * 1024)
        assert recv_exactly(sock, 64 * 1024) == expected
        sock.close()
    finally:
        proc.stop()
        server.stop()


@pytest.mark.stress
def test_sigterm_with_1000_live_tunnels(pki, tls_server: ScriptedWebServer, tmp_path) -> None:
    proc = PtProcess(tor_environment(tmp_path, SSL_CERT_FILE=str(pki.ca_file)))
    try:

        async def main() -> float:
            tunnels = await concurrent_tunnels(
                proc.socks_port(),
                f"https://127.0.0.1:{tls_server.port}{secret_path('/echo')}",
                1000,
            )
            started = time.monotonic()
            proc.proc.send_signal(signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(None, proc.proc.wait, 30)
            elapsed = time.monotonic() - started
            for _, writer in tunnels:
                writer.close()
            return elapsed

        elapsed = asyncio.run(asyncio.wait_for(main(), 240))
        print(
            f"\nSIGTERM with 1000 live tunnels: exit {proc.proc.returncode} after {elapsed * 1000:.0f} ms"
        )
        assert proc.proc.returncode == 0
    finally:
        proc.stop()
    assert proc.stderr == b""
