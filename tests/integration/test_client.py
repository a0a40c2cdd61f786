"""webtunnel.client: the library API, over real loopback sockets to the scripted web server.

``open_webtunnel`` / ``open_tunnel`` take a bridge line, a mapping of arguments, ``BridgeArgs``
or a ready ``BridgeConfig``; each must reach the same echo tunnel. A bad bridge line fails
before any connection is made; ``timeout`` bounds the whole dial.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.support.raw_server import RawServer
from tests.support.secrets import secret_path
from tests.support.upgrade_server import ScriptedWebServer
from webtunnel_pt.errors import BridgeArgsError, HandshakeTimeout
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args
from webtunnel_pt.webtunnel.client import bridge_config, open_tunnel, open_webtunnel
from webtunnel_pt.webtunnel.dial import DialOptions

WAIT_S = 10.0


async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send a message, half-close, read to EOF: the scripted /echo answers it and ``BYE``."""
    writer.write(b"ping through the tunnel")
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), WAIT_S)
    writer.close()
    return data


def spec_forms(url: str) -> dict[str, object]:
    return {
        "bridge line": f"webtunnel 192.0.2.1:443 url={url} ver=0.0.1",
        "mapping": {"url": url, "ver": "0.0.1"},
        "BridgeArgs": BridgeArgs([("url", url), ("ver", "0.0.1")]),
        "BridgeConfig": bridge_config_from_args(BridgeArgs([("url", url)])),
    }


@pytest.mark.parametrize("form", ["bridge line", "mapping", "BridgeArgs", "BridgeConfig"])
def test_open_webtunnel_echoes(form: str, plain_server: ScriptedWebServer) -> None:
    url = f"http://127.0.0.1:{plain_server.port}{secret_path('/echo')}"
    bridge = spec_forms(url)[form]

    async def main() -> bytes:
        reader, writer = await open_webtunnel(bridge)  # type: ignore[arg-type]
        return await echo_once(reader, writer)

    assert asyncio.run(main()) == b"ping through the tunnel" + b"BYE"


def test_bridge_config_forms_agree(plain_server: ScriptedWebServer) -> None:
    url = f"http://127.0.0.1:{plain_server.port}/p"
    configs = [bridge_config(spec) for spec in spec_forms(url).values()]  # type: ignore[arg-type]
    assert {(c.dial_host, c.dial_port, c.request_target) for c in configs} == {
        ("127.0.0.1", plain_server.port, "/p")
    }
    assert bridge_config(configs[0]) is configs[0]


def test_open_tunnel_reports_the_peer_and_keeps_early_bytes(
    plain_server: ScriptedWebServer,
) -> None:
    """``/early`` sends its payload in the same write as the 101: it is the tunnel's first."""
    url = f"http://127.0.0.1:{plain_server.port}{secret_path('/early')}"

    async def main() -> tuple[str, bytes]:
        tunnel = await open_tunnel({"url": url}, DialOptions(timeout_s=WAIT_S))
        first = await asyncio.wait_for(tunnel.reader.readexactly(13), WAIT_S)
        tunnel.writer.close()
        return tunnel.report.peer, first

    peer, first = asyncio.run(main())
    assert peer == f"127.0.0.1:{plain_server.port}"
    assert first == b"EARLY-PAYLOAD"


def test_bad_bridge_line_fails_before_connecting() -> None:
    accepted: list[socket.socket] = []
    with RawServer(accepted.append) as server:
        with pytest.raises(BridgeArgsError):
            asyncio.run(open_webtunnel(f"webtunnel 127.0.0.1:{server.port} ver=0.0.1"))
        with pytest.raises(BridgeArgsError):
            asyncio.run(open_webtunnel({"url": f"ftp://127.0.0.1:{server.port}/p"}))
        assert server.accepted == 0


def test_timeout_bounds_the_whole_dial() -> None:
    """A web server that accepts and never answers: the dial ends at ``timeout``."""
    with RawServer(lambda conn: conn.recv(1)) as server:
        url = f"http://127.0.0.1:{server.port}{secret_path('/echo')}"

        async def main() -> None:
            await asyncio.wait_for(open_webtunnel({"url": url}, timeout=0.5), WAIT_S)

        with pytest.raises(HandshakeTimeout):
            asyncio.run(main())
        assert server.accepted == 1
