"""asyncio glue: ``webtunnel-pt socks``, a SOCKS proxy on loopback in front of the built-in client.

    webtunnel-pt socks --bridge "<line>" [--listen 127.0.0.1:9150] [-f TORRC] ...

It bootstraps (tor's ``Bootstrapped N% (tag): ...`` lines on stderr), listens on loopback only,
prints ``SOCKS proxy ready on 127.0.0.1:9150`` on stdout, and serves until SIGINT or SIGTERM.
Per connection (:mod:`webtunnel_pt.front.socks_proto` parses it):

- CONNECT (SOCKS5 host name, IPv4 or IPv6; SOCKS4/4a): the host goes to the exit as written,
  never resolved here, through ``open_connection(host, port, isolation=...)`` where the
  isolation key is the SOCKS username and password (tor's IsolateSOCKSAuth) or SOCKS4 user id;
- RESOLVE (0xF0): ``resolve(host)`` through the exit, the first address is the answer;
- internal addresses (:mod:`webtunnel_pt.front.internal`) are refused with "not allowed" and a
  warning unless ``--allow-internal-addresses``;
- a failure gets tor's reply for its END reason (:mod:`webtunnel_pt.front.socks_reply`).

Bytes are relayed both ways by managed mode's stream pumps
(:func:`~webtunnel_pt.webtunnel.relay.relay_streams`), which each hold one read
(:data:`~webtunnel_pt.webtunnel.relay.READ_CHUNK_BYTES`) and wait for the other side's
``drain()`` before reading more. When one side ends, the other is
half-closed if it can be and may go on until it ends too or stays silent for
:data:`~webtunnel_pt.deadlines.HALF_CLOSED_IDLE_S`. Destinations are not logged (tor's
SafeLogging) unless ``--unsafe-logging``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

from webtunnel_pt.deadlines import (
    FRONT_STREAM_TIMEOUT_S,
    HALF_CLOSED_IDLE_S,
    SHUTDOWN_GRACE_S,
    SOCKS_HANDSHAKE_TIMEOUT_S,
)
from webtunnel_pt.errors import ConfigError, SocksProtocolError, describe_failure
from webtunnel_pt.front.commands import add_socks_arguments
from webtunnel_pt.front.exit_codes import bootstrap_status
from webtunnel_pt.front.internal import internal_reason
from webtunnel_pt.front.options import FrontOptions
from webtunnel_pt.front.session import (
    ClientFactory,
    TorClientLike,
    bootstrap_unless_stopped,
    default_client_factory,
    load_options,
    make_client,
    print_line,
    register_secrets,
)
from webtunnel_pt.front.socks_proto import (
    RESOLVE,
    FrontRequest,
    FrontSocksHandshake,
    resolve_reply,
)
from webtunnel_pt.front.socks_reply import reply_for_end_reason, reply_for_failure
from webtunnel_pt.logs import NOTICE, REDACTED, Redactor
from webtunnel_pt.socks.codes import SOCKS5_REPLY_TEXT, SocksReply, authority
from webtunnel_pt.stop_signal import StopSignal, watching_signals
from webtunnel_pt.tor.cells import EndReason
from webtunnel_pt.webtunnel.relay import relay_streams

__all__ = ["add_arguments", "run", "serve"]

log = logging.getLogger("webtunnel_pt.front.socks")

EXIT_OK = 0
EXIT_CONFIG = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_socks_arguments(parser)


def _shown(host: str, redactor: Redactor) -> str:
    """A destination as the log may show it: tor's SafeLogging scrubs them."""
    return host if redactor.unsafe else REDACTED


def _why(exc: BaseException, host: str, redactor: Redactor) -> str:
    """An error's message for the log, without the destination unless unsafe logging."""
    text = describe_failure(exc)[2]
    return text if redactor.unsafe else text.replace(host, REDACTED)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def relay(a_reader: Any, a_writer: Any, b_reader: Any, b_writer: Any) -> tuple[int, int]:
    """Copy a->b and b->a until both end, or one ended and the other went silent for
    HALF_CLOSED_IDLE_S, or either fails (a tor stream's error included); return (bytes a->b,
    bytes b->a). Managed mode's stream relay with every failure ending it."""
    return await relay_streams(
        a_reader, a_writer, b_reader, b_writer, HALF_CLOSED_IDLE_S, ends=(Exception,)
    )


async def _close(writer: Any) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        async with asyncio.timeout(SHUTDOWN_GRACE_S * 5):
            await writer.wait_closed()


class SocksFront:
    """Serves SOCKS connections with one bootstrapped client."""

    def __init__(self, tor: TorClientLike, options: FrontOptions, redactor: Redactor) -> None:
        self.tor = tor
        self.options = options
        self.redactor = redactor
        self.connections: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.debug("SOCKS connection ended: %s", describe_failure(exc)[2])
        except Exception as exc:
            log.warning("SOCKS connection failed: %s", describe_failure(exc)[2])
        finally:
            if task is not None:
                self.connections.discard(task)
            await _close(writer)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[FrontSocksHandshake, FrontRequest] | None:
        handshake = FrontSocksHandshake()
        try:
            async with asyncio.timeout(SOCKS_HANDSHAKE_TIMEOUT_S):
                while True:
                    request = handshake.next_event()
                    writer.write(handshake.data_to_send())
                    if isinstance(request, FrontRequest):
                        return handshake, request
                    data = await reader.read(4096)
                    if not data:
                        return None
                    handshake.receive_data(data)
        except SocksProtocolError as exc:
            writer.write(handshake.data_to_send())
            log.info("SOCKS request refused: %s", exc)
            return None

    def _reply(
        self, writer: asyncio.StreamWriter, handshake: FrontSocksHandshake, code: SocksReply
    ) -> None:
        handshake.reply(code)
        writer.write(handshake.data_to_send())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found = await self._handshake(reader, writer)
        if found is None:
            return
        handshake, request = found
        shown = _shown(authority(request.host, request.port), self.redactor)
        if self.options.reject_internal:
            why = internal_reason(request.host)
            if why is not None:
                log.warning(
                    "Rejecting SOCKS request for %s: %s; --allow-internal-addresses lets such "
                    "requests through",
                    shown,
                    why,
                )
                self._reply(writer, handshake, SocksReply.NOT_ALLOWED)
                return
        if request.command == RESOLVE:
            await self._resolve(writer, handshake, request, shown)
            return
        try:
            async with asyncio.timeout(FRONT_STREAM_TIMEOUT_S):
                stream_reader, stream_writer = await self.tor.open_connection(
                    request.host, request.port, isolation=request.isolation
                )
        except Exception as exc:
            code = reply_for_failure(exc)
            log.log(
                NOTICE,
                "stream to %s failed: %s (SOCKS reply %d, %s)",
                shown,
                _why(exc, request.host, self.redactor),
                code,
                SOCKS5_REPLY_TEXT.get(code, ""),
            )
            self._reply(writer, handshake, code)
            return
        try:
            self._reply(writer, handshake, SocksReply.SUCCEEDED)
            early = handshake.trailing_data
            if early:
                stream_writer.write(early)
            up, down = await relay(reader, writer, stream_reader, stream_writer)
            log.debug("stream to %s closed: %d bytes up, %d down", shown, up, down)
        finally:
            await _close(stream_writer)

    async def _resolve(
        self,
        writer: asyncio.StreamWriter,
        handshake: FrontSocksHandshake,
        request: FrontRequest,
        shown: str,
    ) -> None:
        if _is_ip(request.host):  # tor answers a literal itself
            writer.write(resolve_reply(request.version, request.host))
            return
        try:
            async with asyncio.timeout(FRONT_STREAM_TIMEOUT_S):
                answers = list(await self.tor.resolve(request.host, isolation=request.isolation))
        except Exception as exc:
            log.warning("resolve of %s failed: %s", shown, _why(exc, request.host, self.redactor))
            self._reply(writer, handshake, reply_for_failure(exc))
            return
        for answer in answers:
            try:
                reply = resolve_reply(request.version, answer)
            except ValueError:
                continue  # a host name answer (PTR) or junk
            writer.write(reply)
            return
        log.warning("resolve of %s found no address", shown)
        self._reply(writer, handshake, reply_for_end_reason(EndReason.RESOLVEFAILED))


async def serve(
    options: FrontOptions,
    redactor: Redactor,
    *,
    factory: ClientFactory = default_client_factory,
    stop: StopSignal | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    on_ready: Callable[[tuple[str, int]], None] | None = None,
) -> int:
    """Bootstrap, listen, print the ready line, serve until ``stop`` (or a signal).
    ``on_ready`` is called with the bound address once the ready line is out."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    stop = stop if stop is not None else StopSignal()
    with watching_signals(stop):
        tor = make_client(options, factory, err=err, redactor=redactor)
        try:
            if not await bootstrap_unless_stopped(tor, stop):
                log.log(NOTICE, "stopped during bootstrap (%s)", stop.reason)
                return EXIT_OK
            return await _listen(tor, options, redactor, stop, out, on_ready)
        except Exception as exc:
            print_line(err, f"webtunnel-pt socks: {describe_failure(exc)[2]}", redactor)
            return int(bootstrap_status(exc))
        finally:
            await tor.aclose()


async def _listen(
    tor: TorClientLike,
    options: FrontOptions,
    redactor: Redactor,
    stop: StopSignal,
    out: TextIO,
    on_ready: Callable[[tuple[str, int]], None] | None,
) -> int:
    front = SocksFront(tor, options, redactor)
    host, port = options.listen
    try:
        server = await asyncio.start_server(front.handle, host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {authority(host, port)}: {exc.strerror or exc}"
        ) from None
    async with server:
        bound = server.sockets[0].getsockname()
        print_line(out, f"SOCKS proxy ready on {authority(bound[0], bound[1])}", redactor)
        if on_ready is not None:
            on_ready((bound[0], bound[1]))
        await stop.event.wait()
        log.log(NOTICE, "stopping (%s)", stop.reason or "asked to")
        server.close()
        for task in list(front.connections):
            task.cancel()
        if front.connections:
            await asyncio.wait(list(front.connections), timeout=SHUTDOWN_GRACE_S * 5)
    return EXIT_OK


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    """``webtunnel-pt socks``: the exit status (0 after a clean stop)."""
    try:
        options = load_options(args)
    except ConfigError as exc:
        print(f"webtunnel-pt socks: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    register_secrets(options, redactor)
    for notice in options.notices:
        log.log(NOTICE, "%s", notice)
    try:
        return asyncio.run(serve(options, redactor))
    except KeyboardInterrupt:
        return EXIT_OK
