"""Managed mode: the life of the PT as tor's child (pt-spec §3).

    VERSION 1 → STATUS TYPE=version → [PROXY DONE] → CMETHOD webtunnel socks5 127.0.0.1:<port>
    → CMETHODS DONE → serve until SIGTERM, SIGINT or (if asked) EOF on stdin → exit 0

Configuration errors print ``VERSION-ERROR`` / ``ENV-ERROR`` / ``PROXY-ERROR`` and exit 1.
``CMETHOD`` is printed only once its listener is bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping

from webtunnel_pt import __version__
from webtunnel_pt.deadlines import HALF_CLOSED_IDLE_S
from webtunnel_pt.errors import ConfigError, EnvError, ProxyConfigError, VersionError
from webtunnel_pt.logs import PtStdout, Redactor
from webtunnel_pt.outbound.proxy_uri import ProxyConfig
from webtunnel_pt.pt import messages as pt_messages
from webtunnel_pt.pt.env import (
    TRANSPORT_NAME,
    ClientEnvironment,
    negotiate_version,
    parse_client_environment,
)
from webtunnel_pt.pt.listener import ServerOptions, SocksServer
from webtunnel_pt.stop_signal import StopSignal, watch_signals
from webtunnel_pt.webtunnel.dial import DialOptions

log = logging.getLogger(__name__)
IMPLEMENTATION = "webtunnel-pt"


def configure(
    env: Mapping[str, str], out: PtStdout
) -> tuple[ClientEnvironment, ProxyConfig | None]:
    """Negotiate and validate, writing the protocol lines; raise :class:`ConfigError`."""
    try:
        version = negotiate_version(env)
    except VersionError:
        out.write_line(pt_messages.version_error("no-version"))
        raise
    except EnvError as exc:
        out.write_line(pt_messages.env_error(str(exc)))
        raise
    out.write_line(pt_messages.version(version))
    out.write_line(pt_messages.status_version(IMPLEMENTATION, __version__))
    try:
        config = parse_client_environment(env)
    except EnvError as exc:
        out.write_line(pt_messages.env_error(str(exc)))
        raise
    except ProxyConfigError as exc:
        out.write_line(pt_messages.proxy_error(str(exc)))
        raise
    proxy = _announce_proxy(config.proxy, out)
    if config.state_location is not None:
        try:
            os.makedirs(config.state_location, mode=0o700, exist_ok=True)
        except OSError as exc:
            message = f"cannot create TOR_PT_STATE_LOCATION: {exc.strerror}"
            out.write_line(pt_messages.env_error(message))
            raise EnvError(message) from exc
    return config, proxy


def _announce_proxy(proxy: ProxyConfig | None, out: PtStdout) -> ProxyConfig | None:
    """A valid ``TOR_PT_PROXY`` → ``PROXY DONE`` (pt-spec §3.3.2; a bad one got ``PROXY-ERROR``
    from :func:`configure`). No message is built from the password, so it is not given to the
    redactor: a short one would scrub ordinary words from every log line."""
    if proxy is None:
        return None
    out.write_line(pt_messages.proxy_done())
    log.info("bridges are reached through the %s", proxy.describe())
    return proxy


def _watch_stdin(
    loop: asyncio.AbstractEventLoop, stop: StopSignal, group: asyncio.TaskGroup
) -> Callable[[], None]:
    """EOF (or an error) on stdin means tor is gone (pt-spec §3.4, TOR_PT_EXIT_ON_STDIN_CLOSE).

    Returns the function that stops watching. A pollable stdin is watched by the event loop;
    one that is not (a regular file) is read to its end in a worker thread, awaited by a task
    of ``group`` (a regular file has an end, so the thread does too).
    """
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if fd < 0:
        stop.set("stdin closed")
        return lambda: None

    def on_readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set("stdin closed")

    try:
        loop.add_reader(fd, on_readable)
    except (ValueError, OSError, NotImplementedError):
        # Not pollable (a regular file): read it in a thread instead.
        def drain() -> None:
            with contextlib.suppress(OSError):
                while os.read(fd, 4096):
                    pass

        async def wait_drained() -> None:
            await asyncio.to_thread(drain)
            stop.set("stdin closed")

        task = group.create_task(wait_drained())

        def cancel() -> None:
            task.cancel()

        return cancel

    def remove() -> None:
        with contextlib.suppress(ValueError, OSError, NotImplementedError):
            loop.remove_reader(fd)

    return remove


def raise_fd_limit() -> None:
    """Each tunnel holds two descriptors; lift the soft limit to the hard one as tor does."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 65536)
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


#: Plaintext buffer of each asyncio TLS connection. asyncio allocates 256 KiB per connection
#: and keeps it for the connection's life; a TLS record holds at most 16 KiB, so 64 KiB costs
#: no measurable throughput and cuts an idle tunnel from ~300 KiB to ~100 KiB
#: (docs/performance.md).
TLS_READ_BUFFER_BYTES = 64 * 1024


def shrink_tls_read_buffers() -> None:
    """Managed mode owns its process, so it may tune asyncio's TLS class attribute (CPython
    3.11+ names it ``SSLProtocol.max_size``); a library user's process is left alone."""
    from asyncio import sslproto

    protocol = getattr(sslproto, "SSLProtocol", None)
    if protocol is not None and isinstance(getattr(protocol, "max_size", None), int):
        protocol.max_size = min(protocol.max_size, TLS_READ_BUFFER_BYTES)


async def serve(
    env: Mapping[str, str],
    out: PtStdout,
    server_options: ServerOptions | None = None,
    *,
    redactor: Redactor | None = None,
    half_closed_idle_s: float | None = None,
) -> int:
    """Run managed mode until told to stop; return the exit status. ``redactor`` is the one
    logging scrubs with; the listeners register each bridge's secrets with it."""
    try:
        config, proxy = configure(env, out)
    except ConfigError as exc:
        log.error("configuration refused: %s", exc)
        return 1
    raise_fd_limit()
    shrink_tls_read_buffers()
    loop = asyncio.get_running_loop()
    stop = StopSignal()
    # What runs is owned: the exit stack undoes everything in reverse order (servers closed
    # and their connections awaited, the stdin watcher cancelled and awaited, signal handlers
    # removed), whether serving ends normally or by an exception.
    async with contextlib.AsyncExitStack() as owned:
        owned.callback(watch_signals(loop, stop))
        group = await owned.enter_async_context(asyncio.TaskGroup())
        if config.exit_on_stdin_close:
            owned.callback(_watch_stdin(loop, stop, group))

        for name in config.unsupported:
            out.write_line(pt_messages.cmethod_error(name, "no such method"))
        options = server_options or ServerOptions(
            dial=DialOptions(bind_v4=config.bind_v4, bind_v6=config.bind_v6, proxy=proxy),
            half_closed_idle_s=(
                HALF_CLOSED_IDLE_S if half_closed_idle_s is None else half_closed_idle_s
            ),
        )
        listening = 0
        for name in config.transports:
            server = await owned.enter_async_context(SocksServer(options, redactor))
            try:
                host, port = await server.start("127.0.0.1", 0)
            except OSError as exc:
                out.write_line(pt_messages.cmethod_error(name, f"cannot listen: {exc.strerror}"))
                continue
            listening += 1
            out.write_line(pt_messages.cmethod(name, host, port))
            log.info("%s SOCKS listener on %s:%d", name, host, port)
        out.write_line(pt_messages.cmethods_done())
        if not listening:
            log.error("no transport could be started")
            return 1
        await stop.event.wait()
        log.info("stopping: %s", stop.reason)
    return 0


def run(
    env: Mapping[str, str] | None = None,
    out: PtStdout | None = None,
    *,
    redactor: Redactor | None = None,
    half_closed_idle_s: float | None = None,
) -> int:
    """Synchronous entry point for the CLI."""
    env = os.environ if env is None else env
    return asyncio.run(
        serve(env, out or PtStdout(), redactor=redactor, half_closed_idle_s=half_closed_idle_s)
    )


__all__ = ["IMPLEMENTATION", "TRANSPORT_NAME", "configure", "run", "serve"]
