"""asyncio glue shared by the front ends: options from the command line and torrc, the client,
its bootstrap with tor's progress lines, and stopping on SIGINT/SIGTERM.

    options = load_options(args)                       # reads -f TORRC; ConfigError if bad
    register_secrets(options, redactor)
    tor = make_client(options, factory, err=sys.stderr, redactor=redactor)  # progress lines
    await bootstrap(tor)  or  await bootstrap_unless_stopped(tor, stop)
    ... finally: await tor.aclose()

The client is built by a :data:`ClientFactory` so that the front ends depend only on the
contract of ``TorClient`` (docs: api-contract, "asyncio client"): ``bootstrap()``,
``open_connection(host, port, isolation=...)``, ``resolve(host)``, ``aclose()`` / ``async with``.
:func:`default_client_factory` is the one place that knows how the real client is constructed
and how it reports progress (its ``on_progress=`` callback, given each ``BootstrapEvent``).
Tests pass their own factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, TextIO

from webtunnel_pt.deadlines import FRONT_BOOTSTRAP_TIMEOUT_S
from webtunnel_pt.errors import ConfigError
from webtunnel_pt.front.options import FrontOptions, front_options
from webtunnel_pt.front.progress import ProgressLines
from webtunnel_pt.front.torrc import MAX_TORRC_BYTES
from webtunnel_pt.logs import Redactor
from webtunnel_pt.stop_signal import StopSignal
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args, parse_bridge_line

log = logging.getLogger("webtunnel_pt.front")


class TorStreamWriter(Protocol):
    def write(self, data: bytes) -> Any: ...
    async def drain(self) -> None: ...
    def close(self) -> Any: ...
    async def wait_closed(self) -> None: ...


class TorStreamReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class TorClientLike(Protocol):
    """What the front ends use of ``TorClient``."""

    async def bootstrap(self) -> Any: ...
    async def open_connection(
        self, host: str, port: int, isolation: Hashable = None
    ) -> tuple[Any, Any]: ...
    async def resolve(self, host: str, isolation: Hashable = None) -> Sequence[str]: ...
    async def aclose(self) -> None: ...


ProgressCallback = Callable[[object], None]
ClientFactory = Callable[[FrontOptions, ProgressCallback], TorClientLike]


def default_client_factory(options: FrontOptions, progress: ProgressCallback) -> TorClientLike:
    """The built-in client (``webtunnel_pt.tor.client.TorClient``), imported when used; its
    directory cache in ``--state-dir`` (torrc ``DataDirectory``), else in the user's cache
    directory as for ``probe`` (``tor.dircache.default_state_dir``)."""
    from webtunnel_pt.tor.client import TorClient  # loads cryptography: only when used
    from webtunnel_pt.tor.dircache import default_state_dir

    return TorClient(
        list(options.bridges),
        state_dir=options.state_dir if options.state_dir is not None else default_state_dir(),
        dir_authorities=options.dir_authorities,
        distinct_subnets=options.distinct_subnets,
        on_progress=progress,
    )


def load_options(args: Any) -> FrontOptions:
    """The front's options: the command line over ``-f TORRC`` (read here)."""
    text = None
    if getattr(args, "torrc", None):
        try:
            with open(args.torrc, encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_TORRC_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read torrc {args.torrc}: {exc.strerror or exc}") from None
    return front_options(args, text)


def register_secrets(options: FrontOptions, redactor: Redactor) -> None:
    """Teach the redactor every bridge's URL path, query and fingerprint."""
    for text in options.bridges:
        line = parse_bridge_line(text)
        config = bridge_config_from_args(line.args)
        redactor.add_bridge(line.args.get("url", ""), config.request_target, line.fingerprint)


def print_line(stream: TextIO, text: str, redactor: Redactor) -> None:
    """One whole line, scrubbed, flushed; a closed stream is ignored."""
    with contextlib.suppress(OSError, ValueError):
        stream.write(redactor.scrub(text) + "\n")
        stream.flush()


def make_client(
    options: FrontOptions, factory: ClientFactory, *, err: TextIO, redactor: Redactor
) -> TorClientLike:
    """Build the client with a progress callback that prints tor's lines on ``err``."""
    lines = ProgressLines()

    def on_progress(event: object) -> None:
        line = lines.line_for(event)
        if line is not None:
            print_line(err, line, redactor)

    return factory(options, on_progress)


async def bootstrap(tor: TorClientLike, timeout_s: float = FRONT_BOOTSTRAP_TIMEOUT_S) -> None:
    async with asyncio.timeout(timeout_s):
        await tor.bootstrap()


async def bootstrap_unless_stopped(
    tor: TorClientLike, stop: StopSignal, timeout_s: float = FRONT_BOOTSTRAP_TIMEOUT_S
) -> bool:
    """Bootstrap, unless ``stop`` comes first (the bootstrap is then cancelled): whether it
    finished. Its errors are raised."""
    boot = asyncio.ensure_future(bootstrap(tor, timeout_s))
    stopped = asyncio.ensure_future(stop.event.wait())
    try:
        await asyncio.wait([boot, stopped], return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        boot.cancel()
        raise
    finally:
        stopped.cancel()
    if boot.done():
        boot.result()  # its error, if it failed
        return True
    boot.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await boot
    return False
