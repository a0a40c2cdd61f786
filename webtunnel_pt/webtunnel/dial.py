"""Dial a WebTunnel bridge: DNS, TCP, outer TLS (fail closed), HTTP upgrade.

The whole dial has one budget (:data:`DIAL_TIMEOUT_S`, a :class:`Deadline`): each step waits at
most for what is left of it, and each TCP attempt also for at most :data:`CONNECT_TIMEOUT_S`, so
a black-holed address does not eat the time of the next. An error names the :class:`DialStage`
it happened in (``exc.stage``). When the upgrade is accepted the
returned :class:`Tunnel` holds an asyncio reader/writer pair carrying raw tunnel bytes; bytes
the server sent right behind its ``101`` head are still in the reader, first in line.

Names (lyrebird 0.8): the SNI is ``servername=`` (the current name of its rotation,
:mod:`webtunnel_pt.webtunnel.servernames`, which a failed TLS handshake or upgrade moves on) or
the URL host; :mod:`webtunnel_pt.webtunnel.outer_tls` checks the certificate against
``utls-authority=`` when given, else against the SNI, and ``cert=`` replaces both checks;
``Host`` is always the URL host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webtunnel_pt.deadlines import CONNECT_TIMEOUT_S, DIAL_TIMEOUT_S, Deadline
from webtunnel_pt.errors import (
    BridgeUnreachable,
    DialStage,
    HandshakeTimeout,
    SocksReply,
    TlsError,
    UpgradeError,
    WebtunnelError,
    reply_for_os_error,
)
from webtunnel_pt.outbound import resolver
from webtunnel_pt.outbound.proxy_uri import ProxyConfig
from webtunnel_pt.socks.codes import authority
from webtunnel_pt.webtunnel.bridge import BridgeConfig
from webtunnel_pt.webtunnel.outer_tls import check_tls, open_stream
from webtunnel_pt.webtunnel.servernames import (
    PROCESS_ROTATIONS,
    ROTATING_STAGES,
    RotationRegistry,
    ServerNameRotation,
)
from webtunnel_pt.webtunnel.upgrade import MAX_RESPONSE_HEAD_BYTES, UpgradeAccepted, UpgradeClient

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class DialOptions:
    timeout_s: float = DIAL_TIMEOUT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    bind_v4: ipaddress.IPv4Address | None = None
    bind_v6: ipaddress.IPv6Address | None = None
    #: Replaceable for tests: (host, port) -> list of addresses in resolver order.
    resolver: Callable[[str, int], Any] | None = None
    #: ``TOR_PT_PROXY``: when set, TCP goes through it and no DNS is done for the bridge.
    proxy: ProxyConfig | None = None
    #: Where ``servername=`` lists keep their rotation; None: the process's registry.
    server_names: RotationRegistry | None = None


@dataclass
class DialReport:
    """What happened during the dial, for logs and ``probe``; timings in seconds."""

    addresses: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    peer: str = ""
    #: The TLS server name (SNI) this dial sent.
    server_name: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    tls_version: str | None = None
    tls_cipher: str | None = None
    peer_certificate: dict[str, Any] | None = None
    upgrade: UpgradeAccepted | None = None


@dataclass
class _Attempt:
    """One dial in progress: the step it is in, the budget it has left and the SNI it uses."""

    deadline: Deadline
    server_name: str
    stage: DialStage = DialStage.DNS

    def enter(self, stage: DialStage) -> None:
        self.stage = stage


@dataclass
class Tunnel:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    report: DialReport


def is_public(address: IPAddress) -> bool:
    """False for what a censor's poisoned DNS answer would point at: loopback, private,
    link-local, multicast, unspecified, and anything else not globally routable (shared
    100.64/10, documentation and benchmarking ranges)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    )


async def _resolve(config: BridgeConfig, options: DialOptions, report: DialReport) -> list[str]:
    host, port = config.dial_host, config.dial_port
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        return [str(literal)]
    try:
        if options.resolver is not None:
            found = list(await options.resolver(host, port))
        else:
            infos = await resolver.getaddrinfo(host, port)
            found = [info[4][0] for info in infos]
    except (socket.gaierror, UnicodeError) as exc:
        raise BridgeUnreachable(
            f"could not resolve {host}: {getattr(exc, 'strerror', None) or exc}",
            SocksReply.HOST_UNREACHABLE,
        ) from exc
    addresses: list[str] = []
    for text in dict.fromkeys(found):
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if config.dial_literal or is_public(address):
            addresses.append(str(address))
        else:
            report.skipped.append(str(address))
    if not addresses:
        skipped = ", ".join(report.skipped) or "none"
        raise BridgeUnreachable(
            f"DNS for {host} gave no usable public address (skipped: {skipped})",
            SocksReply.HOST_UNREACHABLE,
        )
    return addresses


def _bind_address(address: IPAddress, options: DialOptions) -> str | None:
    if address.is_loopback:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return str(options.bind_v4) if options.bind_v4 else None
    return str(options.bind_v6) if options.bind_v6 else None


def _attempt_timeout(options: DialOptions, deadline: Deadline) -> float | None:
    """One TCP attempt's own limit when it is shorter than what is left of the dial; else None,
    and the dial's deadline ends the attempt (and reports the dial's timeout)."""
    return options.connect_timeout_s if options.connect_timeout_s < deadline.remaining() else None


async def _connect_one(
    address: str, port: int, options: DialOptions, deadline: Deadline
) -> socket.socket:
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bind = _bind_address(ip, options)
        if bind is not None:
            sock.bind((bind, 0))
        async with asyncio.timeout(_attempt_timeout(options, deadline)):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _connect(
    addresses: list[str], port: int, options: DialOptions, report: DialReport, deadline: Deadline
) -> socket.socket:
    last: BridgeUnreachable | None = None
    for address in addresses:
        shown = authority(address, port)
        try:
            sock = await _connect_one(address, port, options, deadline)
        except TimeoutError:
            last = BridgeUnreachable(f"TCP connect to {shown} timed out", SocksReply.TTL_EXPIRED)
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or not exc.errno:  # a scoped literal's zone
                reason = exc.strerror or type(exc).__name__
            else:
                reason = os.strerror(exc.errno)
            last = BridgeUnreachable(
                f"TCP connect to {shown} failed: {reason}", reply_for_os_error(exc)
            )
        else:
            report.peer = shown
            return sock
        log.debug("%s", last)
    assert last is not None  # addresses is never empty
    raise last


async def _read_upgrade(reader: asyncio.StreamReader, client: UpgradeClient) -> UpgradeAccepted:
    """Feed the response head line by line so nothing past its end leaves the reader."""
    received = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                client.receive_data(exc.partial)
            client.receive_eof()
            event = client.next_event()
            if event is None:  # pragma: no cover - h11 reports the close above
                raise UpgradeError("connection closed before the response head ended") from exc
            return event
        except asyncio.LimitOverrunError as exc:
            raise UpgradeError(f"response head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes") from exc
        received += len(line)
        client.receive_data(line)
        event = client.next_event()
        if event is not None:
            return event
        if received > MAX_RESPONSE_HEAD_BYTES:
            raise UpgradeError(f"response head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes")


async def _connect_via_proxy(
    proxy: ProxyConfig,
    config: BridgeConfig,
    options: DialOptions,
    report: DialReport,
    attempt: _Attempt,
) -> socket.socket:
    """TCP to the proxy (connect timeout and bind addresses as for a direct dial), then its
    handshake for the bridge host as written: no local DNS for the bridge.

    The proxy clients are imported here, on first use: without TOR_PT_PROXY, managed mode
    starts without loading them."""
    from webtunnel_pt.outbound import proxy_dial

    mark = time.monotonic()
    sock, _ = await proxy_dial.connect_via_proxy(
        proxy,
        config.dial_host,
        config.dial_port,
        lambda addresses, port: _connect(addresses, port, options, report, attempt.deadline),
        attempt.enter,
    )
    report.peer = f"{authority(config.dial_host, config.dial_port)} via {proxy.describe()}"
    report.timings["proxy"] = time.monotonic() - mark
    return sock


async def _dial(
    config: BridgeConfig, options: DialOptions, report: DialReport, attempt: _Attempt
) -> Tunnel:
    clock = time.monotonic
    if options.proxy is not None:
        sock = await _connect_via_proxy(options.proxy, config, options, report, attempt)
    else:
        start = clock()
        attempt.enter(DialStage.DNS)
        addresses = await _resolve(config, options, report)
        report.addresses = addresses
        report.timings["dns"] = clock() - start
        if report.skipped:
            log.debug("skipped non-public DNS answers %s", ", ".join(report.skipped))

        attempt.enter(DialStage.TCP_CONNECT)
        mark = clock()
        sock = await _connect(addresses, config.dial_port, options, report, attempt.deadline)
        report.timings["tcp"] = clock() - mark

    attempt.enter(DialStage.TLS_HANDSHAKE)
    mark = clock()
    report.server_name = attempt.server_name if config.use_tls else ""
    reader, writer = await open_stream(sock, config, attempt.server_name, attempt.deadline)
    try:
        if config.use_tls:
            summary = check_tls(writer, config, attempt.server_name)
            report.tls_version, report.tls_cipher, report.peer_certificate = summary
            report.timings["tls"] = clock() - mark
            log.debug(
                "TLS %s %s with %s", report.tls_version, report.tls_cipher, attempt.server_name
            )

        attempt.enter(DialStage.UPGRADE)
        mark = clock()
        client = UpgradeClient(config.host_header, config.request_target)
        writer.write(client.data_to_send())
        await writer.drain()
        accepted = await _read_upgrade(reader, client)
        report.upgrade = accepted
        report.timings["upgrade"] = clock() - mark
        log.debug(
            "upgrade accepted (%s, server %s)", accepted.reason, accepted.header("server") or "?"
        )
    except BaseException:
        writer.transport.abort()
        raise
    return Tunnel(reader, writer, report)


def _rotation(config: BridgeConfig, options: DialOptions) -> ServerNameRotation | None:
    """The rotation of a ``servername=`` list of two or more names; None for a single name."""
    if not config.use_tls or len(config.server_names) < 2:
        return None
    registry = options.server_names if options.server_names is not None else PROCESS_ROTATIONS
    return registry.rotation(config.server_names)


async def dial_bridge(config: BridgeConfig, options: DialOptions | None = None) -> Tunnel:
    """Open a tunnel to the bridge or raise a :class:`WebtunnelError` subclass."""
    options = options or DialOptions()
    rotation = _rotation(config, options)
    name = rotation.current() if rotation is not None else config.server_name
    try:
        return await _dial_with_deadline(config, options, name)
    except WebtunnelError as exc:
        if rotation is not None and exc.stage in ROTATING_STAGES and rotation.failed(name):
            log.info("server name %s failed (%s); next dial uses %s", name, exc, rotation.current())
        raise


async def _dial_with_deadline(config: BridgeConfig, options: DialOptions, name: str) -> Tunnel:
    report = DialReport()
    loop = asyncio.get_running_loop()
    # On the loop's clock, so that the deadline below is the very moment the budget runs out.
    attempt = _Attempt(Deadline.after(options.timeout_s, clock=loop.time), name)
    try:
        async with asyncio.timeout_at(attempt.deadline.when):
            return await _dial(config, options, report, attempt)
    except WebtunnelError as exc:
        if exc.stage is None:
            exc.stage = attempt.stage
        raise
    except TimeoutError as exc:
        error: WebtunnelError = HandshakeTimeout(
            f"bridge dial timed out after {options.timeout_s:g} s during {attempt.stage}"
        )
        cause: BaseException = exc
    except ssl.SSLError as exc:  # e.g. a TLS 1.3 alert that arrives with the first read
        reason = getattr(exc, "reason", None) or exc
        error, cause = TlsError(f"TLS error during {attempt.stage}: {reason}"), exc
    except OSError as exc:
        error = BridgeUnreachable(
            f"connection lost during {attempt.stage}: {exc.strerror or type(exc).__name__}",
            reply_for_os_error(exc),
        )
        cause = exc
    error.stage = attempt.stage
    raise error from cause
