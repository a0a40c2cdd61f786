"""The loopback SOCKS listener tor connects to, and the life of one connection.

Per connection: SOCKS handshake (deadline :data:`SOCKS_HANDSHAKE_TIMEOUT_S`) → bridge arguments
validated → dial (TCP, TLS, upgrade; its own deadline) while watching for tor hanging up → SOCKS
grant → relay. Every failure ends in the SOCKS reply :func:`describe_failure` picks and one LOG
line without secrets; nothing raised here escapes into asyncio's default handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from webtunnel_pt.deadlines import HALF_CLOSED_IDLE_S, SHUTDOWN_GRACE_S, SOCKS_HANDSHAKE_TIMEOUT_S
from webtunnel_pt.errors import (
    BridgeArgsError,
    ClientGone,
    HandshakeTimeout,
    SocksReply,
    describe_failure,
)
from webtunnel_pt.logs import NOTICE, Redactor
from webtunnel_pt.pt.args import bridge_args, check_bridge_credentials
from webtunnel_pt.socks.server import SocksRequest, SocksServerHandshake
from webtunnel_pt.webtunnel import relay as relay_mod
from webtunnel_pt.webtunnel.bridge import BridgeConfig, bridge_config_from_args
from webtunnel_pt.webtunnel.dial import DialOptions, Tunnel, dial_bridge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    dial: DialOptions = field(default_factory=DialOptions)
    socks_timeout_s: float = SOCKS_HANDSHAKE_TIMEOUT_S
    half_closed_idle_s: float = HALF_CLOSED_IDLE_S


def require_loopback(host: str) -> None:
    """The SOCKS listener is for tor on this machine only."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"refusing to listen on non-loopback address {host}")


class SocksServer:
    """Accepts tor's SOCKS connections on loopback and serves each as a tunnel.

    Every connection is a task of the server's own :class:`asyncio.TaskGroup`, entered by
    :meth:`start` (or ``async with``) and left by :meth:`aclose`, which stops accepting,
    cancels the connections and waits for them: nothing outlives the server. Use it as
    ``async with SocksServer() as server: await server.start()``, or call :meth:`start` and
    :meth:`aclose` from the same task.
    """

    def __init__(self, options: ServerOptions | None = None, redactor: Redactor | None = None):
        """``redactor`` learns each bridge's secrets: pass the one logging scrubs with."""
        self.options = options or ServerOptions()
        self._redactor = redactor if redactor is not None else Redactor()
        self._server: asyncio.Server | None = None
        self._group: asyncio.TaskGroup | None = None
        self._closing = False
        self._connections: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    async def __aenter__(self) -> SocksServer:
        if self._group is None:
            group = asyncio.TaskGroup()
            await group.__aenter__()
            self._group = group
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        require_loopback(host)
        await self.__aenter__()
        # A plain (not async) callback: asyncio then creates no task of its own per connection.
        self._server = await asyncio.start_server(self._accepted, host, port)
        address = self._server.sockets[0].getsockname()
        return address[0], address[1]

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def aclose(self) -> None:
        """Stop accepting, end every connection; returns within about a second.

        Connections are cancelled twice at most, :data:`SHUTDOWN_GRACE_S` apart; each ends
        promptly on cancellation (their closes abort on it), and the group then awaits them.
        """
        self._closing = True
        if self._server is not None:
            self._server.close()
        group, self._group = self._group, None
        try:
            for attempt in range(2):
                pending = [task for task in self._connections if not task.done()]
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S * (attempt + 1))
        except BaseException as exc:
            # Cancelled while waiting: the group still cancels and awaits every connection.
            if group is not None:
                await group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if group is not None:
            await group.__aexit__(None, None, None)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or self._group is None:
            writer.transport.abort()
            return
        task = self._group.create_task(self._serve_connection(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn_id = next(self._ids)
        try:
            await Connection(conn_id, reader, writer, self.options, self._redactor).serve()
        except asyncio.CancelledError:
            # Only aclose() cancels connections. Ending the task normally keeps the group from
            # treating the cancellation as a failure.
            pass
        except Exception:
            # Connection.serve reports its own failures; this is a bug in that reporting. One
            # connection's bug must not cancel the group, and with it the whole listener.
            log.exception("connection %d: internal error", conn_id)


class Connection:
    """One SOCKS connection from tor."""

    def __init__(
        self,
        conn_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        options: ServerOptions,
        redactor: Redactor,
    ) -> None:
        self.id = conn_id
        self.reader = reader
        self.writer = writer
        self.options = options
        self.redactor = redactor
        self.handshake = SocksServerHandshake(check_bridge_credentials)
        self.config: BridgeConfig | None = None

    def _where(self) -> str:
        if self.config is None:
            return f"connection {self.id}"
        return f"connection {self.id} to {self.config.describe(self.redactor.unsafe)}"

    async def serve(self) -> None:
        tunnel: Tunnel | None = None
        try:
            request = await self._socks_handshake()
            self.config = self._bridge_config(request)
            started = time.monotonic()
            tunnel, early = await self._dial_watching_client(self.config)
            self.handshake.reply(SocksReply.SUCCEEDED)
            self.writer.write(self.handshake.data_to_send())
            pending = self.handshake.trailing_data + early
            if pending:
                tunnel.writer.write(pending)
            log.info(
                "%s: tunnel up in %.0f ms (%s)",
                self._where(),
                (time.monotonic() - started) * 1000,
                tunnel.report.peer,
            )
            sent, received = await relay_mod.relay(
                self.reader,
                self.writer,
                tunnel.reader,
                tunnel.writer,
                half_closed_idle_s=self.options.half_closed_idle_s,
            )
            tunnel = None
            log.info("%s: closed after %d bytes up, %d down", self._where(), sent, received)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._refuse(exc)
        finally:
            if tunnel is not None:
                tunnel.writer.transport.abort()
            await relay_mod.close_writer(self.writer)

    def _refuse(self, exc: BaseException) -> None:
        reply, severity, message = describe_failure(exc)
        if self.handshake.awaiting_reply:
            self.handshake.reply(reply)
        with contextlib.suppress(Exception):
            data = self.handshake.data_to_send()
            if data and not self.writer.is_closing():
                self.writer.write(data)
        level = {"error": logging.ERROR, "warning": logging.WARNING, "notice": NOTICE}.get(
            severity, logging.INFO
        )
        log.log(level, "%s failed: %s", self._where(), message, exc_info=severity == "error")

    async def _socks_handshake(self) -> SocksRequest:
        try:
            async with asyncio.timeout(self.options.socks_timeout_s):
                while True:
                    request = self.handshake.next_event()
                    self._flush_handshake()
                    if request is not None:
                        return request
                    data = await self.reader.read(4096)
                    if not data:
                        raise ClientGone("tor closed the connection during the SOCKS handshake")
                    self.handshake.receive_data(data)
        except TimeoutError as exc:
            raise HandshakeTimeout(
                f"SOCKS handshake not finished within {self.options.socks_timeout_s:g} s"
            ) from exc
        finally:
            self._flush_handshake()

    def _flush_handshake(self) -> None:
        data = self.handshake.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def _bridge_config(self, request: SocksRequest) -> BridgeConfig:
        args = bridge_args(request)
        if args is None:
            raise BridgeArgsError("tor sent no bridge arguments; the bridge line needs url=")
        config = bridge_config_from_args(args)
        self.redactor.add_bridge(args["url"], config.request_target)
        for notice in config.notices:
            log.log(NOTICE, "connection %d: %s", self.id, notice)
        return config

    async def _dial_watching_client(self, config: BridgeConfig) -> tuple[Tunnel, bytes]:
        """Dial, but give up as soon as tor hangs up; keep any bytes tor sends meanwhile.

        Both tasks are this call's own: whatever happens, it cancels and awaits them before
        it returns or raises, and a tunnel that is not handed on is aborted.
        """
        dial = asyncio.create_task(dial_bridge(config, self.options.dial))
        watch = asyncio.create_task(self.reader.read(relay_mod.READ_CHUNK_BYTES))
        try:
            await asyncio.wait({dial, watch}, return_when=asyncio.FIRST_COMPLETED)
            await _cancel_and_wait(watch)
            if not watch.cancelled():
                early = watch.result()  # re-raises a read error from tor's side
                if not early:
                    raise ClientGone("tor closed the connection while the bridge was dialled")
            else:
                early = b""
            return await dial, early
        except BaseException:
            await _cancel_and_wait(watch)
            await _cancel_and_wait(dial)
            if not watch.cancelled():
                watch.exception()  # retrieved: the failure that matters is being raised
            if not dial.cancelled() and dial.exception() is None:
                dial.result().writer.transport.abort()
            raise


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` unless it is done, and wait until it is (a cancellation of the caller
    still interrupts the wait)."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
