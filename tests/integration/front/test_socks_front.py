"""The SOCKS front (front/socks_front.py) with real SOCKS clients (curl, tor's PT client helper,
raw bytes) against the fake TorClient of fake_client.py: a test double over loopback TCP,
allowed here because these tests are about the front end; the real client is tested in
tests/integration/tor and the whole chain in tests/e2e."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import pytest

from tests.integration.front.fake_client import FakeNetwork
from tests.integration.front.harness import (
    connect_request,
    options,
    resolve_request,
    run,
    socks5_request,
    socks_front,
)
from tests.integration.front.servers import echo_server, http_server
from tests.support.socks_client import socks_connect
from tests.unit.front.vectors import FINGERPRINT, SECRET_PATH
from webtunnel_pt.errors import CircuitDestroyed, ConsensusStale, StreamRefused
from webtunnel_pt.front.socks_front import serve
from webtunnel_pt.logs import Redactor
from webtunnel_pt.stop_signal import StopSignal
from webtunnel_pt.tor.cells import DestroyReason, EndReason

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
PAGE = b"<html><title>through the front</title></html>\n"


async def _curl(*args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


@needs_curl
def test_curl_socks5_hostname_reaches_the_exit_unresolved_and_isolated_by_credentials() -> None:
    network = FakeNetwork(routes={"web.test": "127.0.0.1"})

    async def main() -> None:
        async with http_server({"/": PAGE}) as web, socks_front(network) as front:
            code, body, err = await _curl(
                "--proxy", f"socks5h://127.0.0.1:{front.port}", f"http://web.test:{web}/"
            )
            assert (code, body) == (0, PAGE), err
            code, body, err = await _curl(
                "--proxy",
                f"socks5h://alice:secret@127.0.0.1:{front.port}",
                f"http://web.test:{web}/",
            )
            assert (code, body) == (0, PAGE), err
            assert network.opened == [
                ("web.test", web, None),
                ("web.test", web, (b"alice", b"secret")),
            ]
            assert front.out.getvalue() == f"SOCKS proxy ready on 127.0.0.1:{front.port}\n"
            assert front.err.getvalue().splitlines()[-1] == "Bootstrapped 100% (done): Done"

    run(main())


@needs_curl
def test_curl_socks4a() -> None:
    network = FakeNetwork(routes={"web.test": "127.0.0.1"})

    async def main() -> None:
        async with http_server({"/p": PAGE}) as web, socks_front(network) as front:
            code, body, err = await _curl(
                "--proxy", f"socks4a://bob@127.0.0.1:{front.port}", f"http://web.test:{web}/p"
            )
            assert (code, body) == (0, PAGE), err
            assert network.opened == [("web.test", web, b"bob")]

    run(main())


def test_relay_carries_bytes_both_ways_and_early_data() -> None:
    network = FakeNetwork(routes={"echo.test": "127.0.0.1"})

    async def main() -> None:
        async with echo_server() as echo, socks_front(network) as front:
            reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
            # greeting, request and the first bytes of the tunnel in one write
            writer.write(b"\x05\x01\x00" + connect_request("echo.test", echo) + b"early ")
            assert await reader.readexactly(2 + 10) == b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6)
            payload = os.urandom(1 << 20)
            writer.write(payload)
            got = await reader.readexactly(len(b"early ") + len(payload))
            assert got == b"early " + payload
            writer.close()

    run(main())


def test_internal_addresses_are_refused_unless_allowed() -> None:
    async def main() -> None:
        network = FakeNetwork()
        async with echo_server() as echo, socks_front(network) as front:
            code, _ = await asyncio.to_thread(
                socks_connect, front.port, None, 10, ("127.0.0.1", echo)
            )
            assert code == 2  # not allowed
            reply, _, w = await socks5_request(front.port, connect_request("localhost", echo))
            assert reply[1] == 2
            w.close()
            assert network.opened == []
        async with (
            echo_server() as echo,
            socks_front(network, "--allow-internal-addresses") as front,
        ):
            code, sock = await asyncio.to_thread(
                socks_connect, front.port, None, 10, ("127.0.0.1", echo)
            )
            assert code == 0
            sock.sendall(b"ping")
            assert await asyncio.to_thread(sock.recv, 4) == b"ping"
            sock.close()
            assert network.opened == [("127.0.0.1", echo, None)]

    run(main())


def test_resolve_through_the_exit() -> None:
    network = FakeNetwork(
        names={"v4.test": ["93.184.216.34"], "v6.test": ["2001:db8::7"], "none.test": []},
        failures={"gone.test": StreamRefused(EndReason.RESOLVEFAILED)},
    )

    async def main() -> None:
        async with socks_front(network) as front:
            reply, _, w = await socks5_request(
                front.port, resolve_request("v4.test"), auth=(b"u", b"p")
            )
            assert reply == bytes.fromhex("05000001 5db8d822 0000")
            w.close()
            reply, _, w = await socks5_request(front.port, resolve_request("v6.test"))
            assert reply == bytes.fromhex("05000004 20010db8000000000000000000000007 0000")
            w.close()
            for host in ("none.test", "gone.test"):
                reply, _, w = await socks5_request(front.port, resolve_request(host))
                assert reply[1] == 4  # host unreachable
                w.close()
            reply, _, w = await socks5_request(front.port, resolve_request("93.184.216.34"))
            assert reply == bytes.fromhex("05000001 5db8d822 0000")  # answered here, as by tor
            w.close()
            assert network.resolved[0] == ("v4.test", (b"u", b"p"))
            assert [host for host, _ in network.resolved] == [
                "v4.test",
                "v6.test",
                "none.test",
                "gone.test",
            ]
            assert network.opened == []

    run(main())


@pytest.mark.parametrize(
    ("failure", "reply"),
    [
        (StreamRefused(EndReason.EXITPOLICY), 2),
        (StreamRefused(EndReason.RESOLVEFAILED), 4),
        (StreamRefused(EndReason.CONNECTREFUSED), 5),
        (StreamRefused(EndReason.TIMEOUT), 6),
        (CircuitDestroyed(DestroyReason.CHANNEL_CLOSED), 1),
        (TimeoutError(), 6),
    ],
)
def test_failures_get_tors_reply(failure: BaseException, reply: int) -> None:
    network = FakeNetwork(failures={"fail.test": failure})

    async def main() -> None:
        async with socks_front(network) as front:
            answer, reader, writer = await socks5_request(
                front.port, connect_request("fail.test", 80)
            )
            assert answer == bytes([5, reply, 0, 1]) + bytes(6)
            assert await reader.read() == b""  # and the connection is closed
            writer.close()

    run(main())


def test_bad_socks_is_answered_and_closed() -> None:
    async def main() -> None:
        async with socks_front(FakeNetwork()) as front:
            reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
            writer.write(b"\x05\x01\x00\x05\x02\x00\x01\x01\x02\x03\x04\x00\x50")  # BIND
            assert await reader.read() == b"\x05\x00\x05\x07\x00\x01" + bytes(6)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", front.port)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            assert await reader.read() == b""
            writer.close()

    run(main())


def test_bootstrap_failure_exits_with_its_status_and_prints_no_secret() -> None:
    network = FakeNetwork(bootstrap_error=ConsensusStale(f"stale at {SECRET_PATH}"))
    redactor = Redactor()
    redactor.add_bridge(f"https://bridge.example/{SECRET_PATH}", f"/{SECRET_PATH}", FINGERPRINT)

    async def main() -> None:
        import io

        out, err = io.StringIO(), io.StringIO()
        status = await serve(
            options(), redactor, factory=network.factory, out=out, err=err, stop=StopSignal()
        )
        assert status == 4  # the directory was not verified
        assert out.getvalue() == ""
        text = err.getvalue()
        assert "Bootstrapped 25% (handshake)" in text and "stale at" in text
        assert SECRET_PATH not in text
        assert network.clients[0].closed

    run(main())


def test_sigterm_stops_cleanly_and_closes_connections() -> None:
    network = FakeNetwork(routes={"echo.test": "127.0.0.1"})

    async def main() -> None:
        async with echo_server() as echo, socks_front(network) as front:
            reply, reader, writer = await socks5_request(
                front.port, connect_request("echo.test", echo)
            )
            assert reply[1] == 0
            os.kill(os.getpid(), signal.SIGTERM)  # the front's handler turns it into a stop
            assert await front.task == 0
            assert front.stop.reason == "SIGTERM"
            assert await reader.read() == b""  # the live connection was closed
            writer.close()
            assert network.clients[0].closed

    run(main())


def test_a_stop_during_bootstrap_ends_it_cleanly() -> None:
    async def main() -> None:
        import io

        network = FakeNetwork(bootstrap_gate=asyncio.Event())  # a bootstrap that never ends
        out, err, stop = io.StringIO(), io.StringIO(), StopSignal()
        task = asyncio.create_task(
            serve(options(), Redactor(), factory=network.factory, stop=stop, out=out, err=err)
        )
        await network.bootstrapping.wait()
        os.kill(os.getpid(), signal.SIGINT)
        assert await task == 0
        assert stop.reason == "SIGINT"
        assert out.getvalue() == ""  # never ready
        assert err.getvalue() == "Bootstrapped 10% (conn): Connecting to the bridge\n"
        assert network.clients[0].closed

    run(main())
