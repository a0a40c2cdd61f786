"""The SOCKS server and dialer in-process, with short deadlines, over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support.certs import Pki, bad_certificate_context
from tests.support.secrets import SecretPathServer, secret_path
from tests.support.socks_client import send_bridge_request
from tests.support.upgrade_server import EARLY_PAYLOAD, ScriptedWebServer
from webtunnel_pt import open_tunnel, open_webtunnel
from webtunnel_pt.errors import (
    BridgeArgsError,
    BridgeUnreachable,
    HandshakeTimeout,
    SocksReply,
    TlsError,
    UpgradeRejected,
)
from webtunnel_pt.outbound import tls_profiles
from webtunnel_pt.pt.args import encode_socks_credentials, escape_args
from webtunnel_pt.pt.listener import ServerOptions, SocksServer
from webtunnel_pt.webtunnel.dial import DialOptions


@pytest.fixture(autouse=True)
def trust_test_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    forget_tls_contexts()  # contexts read SSL_CERT_FILE when they are made
    yield
    forget_tls_contexts()


def forget_tls_contexts() -> None:
    for name in dir(tls_profiles):
        cache = getattr(tls_profiles, name)
        if name.endswith("_CONTEXTS") and isinstance(cache, dict):
            cache.clear()


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def socks_request(
    port: int, args: dict[str, str]
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await send_bridge_request(port, args)
    reply = await reader.readexactly(10)
    return reply[1], reader, writer


async def with_server(
    body: Callable[[SocksServer, int], Awaitable[Any]], options: ServerOptions | None = None
) -> Any:
    server = SocksServer(
        options or ServerOptions(dial=DialOptions(timeout_s=2.0, connect_timeout_s=1.0))
    )
    _, port = await server.start()
    try:
        return await body(server, port)
    finally:
        await server.aclose()


def short_url(server: ScriptedWebServer, path: str) -> dict[str, str]:
    """Bridge arguments for ``path`` on ``server``, behind a fresh secret path segment."""
    return {"url": f"https://127.0.0.1:{server.port}{secret_path(path)}"}


@pytest.mark.parametrize("path", ["/silent", "/drip"])
def test_server_that_never_finishes_the_head_times_out(
    tls_server: ScriptedWebServer, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    args = short_url(tls_server, path)

    async def body(server: SocksServer, port: int) -> int:
        rep, _, writer = await socks_request(port, args)
        writer.close()
        return rep

    with caplog.at_level(logging.DEBUG, logger="webtunnel_pt"):
        assert run(with_server(body)) == SocksReply.TTL_EXPIRED
    assert "bridge dial timed out after 2 s during upgrade" in caplog.text
    secret_segment = args["url"].split("/")[3]
    assert path not in caplog.text
    assert secret_segment not in caplog.text


def test_tcp_accepted_then_silence_hits_the_tls_deadline() -> None:
    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)
            await reader.read()

        mute_server = await asyncio.start_server(mute, "127.0.0.1", 0)
        mute_port = mute_server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(HandshakeTimeout, match="TLS handshake"):
                await open_webtunnel(
                    {"url": f"https://127.0.0.1:{mute_port}{secret_path()}"}, timeout=1.0
                )
        finally:
            for writer in accepted:
                writer.close()
            mute_server.close()

    run(main())


def test_socks_handshake_deadline_closes_the_connection() -> None:
    async def body(server: SocksServer, port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x05\x02\x00")  # an incomplete greeting, then nothing
        data = await reader.read()
        writer.close()
        return data

    options = ServerOptions(socks_timeout_s=0.3)
    assert run(with_server(body, options)) == b""


def test_client_that_hangs_up_during_the_dial_leaks_nothing(tls_server: ScriptedWebServer) -> None:
    async def body(server: SocksServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        user, password = encode_socks_credentials(
            escape_args(short_url(tls_server, "/silent").items())
        )
        writer.write(b"\x05\x01\x02")
        await reader.readexactly(2)
        writer.write(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        await reader.readexactly(2)
        writer.write(b"\x05\x01\x00\x01" + bytes(4) + b"\x01\xbb")
        while tls_server.open_connections == 0:  # the dial has reached the server
            await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()
        deadline = asyncio.get_running_loop().time() + 5
        while (
            server.active_connections or tls_server.open_connections
        ) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert server.active_connections == 0
        assert tls_server.open_connections == 0

    options = ServerOptions(dial=DialOptions(timeout_s=30.0))
    run(with_server(body, options))


def test_bytes_sent_by_the_client_during_the_dial_are_not_lost(
    tls_server: ScriptedWebServer,
) -> None:
    async def body(server: SocksServer, port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        user, password = encode_socks_credentials(
            escape_args(short_url(tls_server, "/echo").items())
        )
        writer.write(
            b"\x05\x01\x02"
            + b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password
            + b"\x05\x01\x00\x01" + bytes(4) + b"\x01\xbb"
            + b"pipelined"
        )  # fmt: skip
        await reader.readexactly(2 + 2 + 10)
        data = await reader.readexactly(len(b"pipelined"))
        writer.close()
        return data

    assert run(with_server(body)) == b"pipelined"


def test_dns_answers_with_only_private_addresses_are_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.1", "127.0.0.1", "192.168.1.1", "fe80::1"]

    async def main() -> None:
        with pytest.raises(BridgeUnreachable, match="no usable public address") as info:
            await open_tunnel(
                {"url": f"https://bridge.example.com{secret_path()}"},
                DialOptions(resolver=resolver, timeout_s=2),
            )
        assert info.value.socks_reply == SocksReply.HOST_UNREACHABLE

    run(main())


def test_dns_failure_is_host_unreachable() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def main() -> None:
        with pytest.raises(BridgeUnreachable, match="could not resolve") as info:
            await open_tunnel(
                {"url": f"https://nx.example{secret_path()}"}, DialOptions(resolver=resolver)
            )
        assert info.value.socks_reply == SocksReply.HOST_UNREACHABLE

    run(main())


def test_dns_public_address_first_private_skipped(tls_server: ScriptedWebServer) -> None:
    """An explicit addr= is used as given even when it is loopback."""

    async def main() -> bytes:
        tunnel = await open_tunnel(
            {
                "url": f"https://bridge.test{secret_path('/early')}",
                "addr": f"127.0.0.1:{tls_server.port}",
            }
        )
        data = await tunnel.reader.readexactly(len(EARLY_PAYLOAD))
        assert tunnel.report.tls_version in ("TLSv1.2", "TLSv1.3")
        assert tunnel.report.upgrade is not None
        tunnel.writer.close()
        return data

    assert run(main()) == EARLY_PAYLOAD


@pytest.mark.parametrize("kind", ["expired", "self-signed"])
def test_bad_certificates_fail_closed(pki: Pki, kind: str) -> None:
    server = SecretPathServer(bad_certificate_context(pki, kind))
    server.start()
    try:

        async def main() -> None:
            with pytest.raises(TlsError, match="not accepted"):
                await open_webtunnel({"url": f"https://127.0.0.1:{server.port}{secret_path()}"})

        run(main())
        assert server.request_heads == []
    finally:
        server.stop()


def test_cert_pin_replaces_ca_validation(pki: Pki) -> None:
    import trustme

    from webtunnel_pt.webtunnel.outer_tls import chain_pin

    ca = trustme.CA()  # not trusted by the PT
    leaf = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    server = SecretPathServer(ctx)
    server.start()
    chain = [ssl.PEM_cert_to_DER_cert(blob.bytes().decode()) for blob in leaf.cert_chain_pems]
    good = __import__("base64").b64encode(chain_pin(chain)).decode()
    bad = __import__("base64").b64encode(bytes(32)).decode()
    try:

        async def main() -> None:
            reader, writer = await open_webtunnel(
                {"url": f"https://127.0.0.1:{server.port}{secret_path('/echo')}", "cert": good}
            )
            writer.write(b"pinned")
            assert await reader.readexactly(6) == b"pinned"
            writer.close()
            with pytest.raises(TlsError, match="does not match the cert= pin"):
                await open_webtunnel(
                    {"url": f"https://127.0.0.1:{server.port}{secret_path()}", "cert": bad}
                )

        run(main())
    finally:
        server.stop()


def test_library_rejects_bad_bridge_lines_before_connecting() -> None:
    async def main() -> None:
        with pytest.raises(BridgeArgsError):
            await open_webtunnel("webtunnel 192.0.2.1:443 ver=0.0.3")
        with pytest.raises(BridgeArgsError):
            await open_webtunnel({"url": f"ftp://example.com{secret_path()}"})

    run(main())


def test_library_refusal_carries_the_status(tls_server: ScriptedWebServer) -> None:
    async def main() -> None:
        with pytest.raises(UpgradeRejected) as info:
            await open_webtunnel(
                f"Bridge webtunnel 192.0.2.1:443 "
                f"url=https://127.0.0.1:{tls_server.port}{secret_path('/status/403')}"
            )
        assert info.value.status == 403

    run(main())


def test_addr_given_by_name_is_resolved_and_tried_in_order(tls_server: ScriptedWebServer) -> None:
    """An explicit addr= name goes through the system resolver and its answers are used as
    given, loopback included; an address that refuses (``::1`` where ``localhost`` has it)
    passes the turn to the next."""

    async def main() -> bytes:
        tunnel = await open_tunnel(
            {
                "url": f"https://bridge.test{secret_path('/early')}",
                "addr": f"localhost:{tls_server.port}",
            }
        )
        data = await tunnel.reader.readexactly(len(EARLY_PAYLOAD))
        assert tunnel.report.peer == f"127.0.0.1:{tls_server.port}"
        tunnel.writer.close()
        return data

    assert run(main()) == EARLY_PAYLOAD


def test_unresolvable_ipv6_zone_is_named_in_the_error() -> None:
    """A scoped IPv6 literal whose interface does not exist fails with the resolver's reason,
    not "Unknown error -2"."""

    async def main() -> None:
        with pytest.raises(BridgeUnreachable) as info:
            await open_tunnel(
                {"url": f"https://bridge.test{secret_path()}", "addr": "[fe80::1%nosuchif0]:443"},
                DialOptions(timeout_s=5),
            )
        assert "Unknown error" not in str(info.value)
        assert info.value.stage == "TCP connect"

    run(main())
