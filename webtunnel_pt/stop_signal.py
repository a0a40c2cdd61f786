"""What stops a long-running command: SIGTERM or SIGINT (managed mode adds EOF on stdin), kept
as one event with the reason that set it first, for the log.

    stop = StopSignal()
    remove = watch_signals(loop, stop)      # or: with watching_signals(stop): ...
    await stop.event.wait(); log.info("stopping: %s", stop.reason)
    remove()

Shared by managed mode (:mod:`webtunnel_pt.pt.managed`) and the built-in client's front ends
(:mod:`webtunnel_pt.front.session`). Where the loop has no signal handlers (Windows, a thread
other than the main one) nothing is installed and only the caller's own triggers stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_NO_HANDLERS = (NotImplementedError, RuntimeError, ValueError)


class StopSignal:
    """Set by SIGTERM/SIGINT (or EOF on stdin, or a test); remembers what set it first."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


def watch_signals(loop: asyncio.AbstractEventLoop, stop: StopSignal) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop``; returns the function that removes the handlers."""
    installed: list[int] = []
    for signum in _SIGNALS:
        with contextlib.suppress(*_NO_HANDLERS):
            loop.add_signal_handler(signum, stop.set, signal.Signals(signum).name)
            installed.append(signum)

    def remove() -> None:
        for signum in installed:
            with contextlib.suppress(*_NO_HANDLERS):
                loop.remove_signal_handler(signum)

    return remove


@contextlib.contextmanager
def watching_signals(stop: StopSignal) -> Iterator[StopSignal]:
    """:func:`watch_signals` on the running loop while inside the ``with``."""
    remove = watch_signals(asyncio.get_running_loop(), stop)
    try:
        yield stop
    finally:
        remove()
