"""``getaddrinfo`` off the event loop, in daemon threads that never hold up the exit.

asyncio's ``loop.getaddrinfo()`` runs in the default executor, and both ``asyncio.run()`` and
the interpreter wait for that executor's threads before the process ends. One lookup stuck on
an unanswering DNS server (glibc waits 5 s per try, several tries) would keep the PT alive long
after tor asked it to stop, against the one second it is given. A daemon thread is simply left
behind at exit; its answer no longer matters then.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import weakref
from typing import Any

#: Lookups in flight at once per event loop, as many as asyncio's default executor would run;
#: a slot is freed when its thread ends, not when a cancelled caller stops waiting.
MAX_CONCURRENT_LOOKUPS = 32

AddrInfo = list[tuple[Any, ...]]

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def getaddrinfo(host: str, port: int) -> AddrInfo:
    """``socket.getaddrinfo(host, port, type=SOCK_STREAM)``; raises what it raises."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)
    await slots.acquire()
    future: asyncio.Future[AddrInfo] = loop.create_future()

    def finish(result: AddrInfo | None, error: BaseException | None) -> None:
        slots.release()
        if future.done():  # the caller was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def lookup() -> None:
        try:
            result: AddrInfo | None = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            error: BaseException | None = None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(finish, result, error)

    try:
        threading.Thread(target=lookup, name="getaddrinfo", daemon=True).start()
    except BaseException:
        slots.release()
        raise
    return await future
