"""The bookkeeping of :mod:`webtunnel_pt.outbound.ssl_socket_transport`: which readiness of the
socket the transport waits for, and its write queue with flow-control marks.

    interest = Interest(reading=True)
    interest.wanted(queued=False)          # (True, False): wait until readable
    queue = WriteQueue(high=64 * 1024)
    queue.push(b"...")                     # after OpenSSL said "want write"
    queue.above_high() and queue.mark_paused()   # True once: call pause_writing()

OpenSSL on a non-blocking socket (``SSL_read`` / ``SSL_write``) may need the socket readable
to finish a write or writable to finish a read (``SSL_ERROR_WANT_READ`` / ``WANT_WRITE``, see
OpenSSL's ``SSL_get_error``), and a write that could not finish must be retried with the same
bytes; so the head of the queue stays whole until OpenSSL took all of it.

Sans-I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

#: asyncio's defaults for a transport's write buffer (``FlowControlMixin``).
DEFAULT_HIGH_WATER_BYTES = 64 * 1024
DEFAULT_LOW_WATER_BYTES = DEFAULT_HIGH_WATER_BYTES // 4


@dataclass
class Interest:
    """What the transport is doing and what OpenSSL asked for."""

    #: The protocol wants data (not paused, no EOF, not closing).
    reading: bool = False
    #: The last read stopped on "want write": it goes on when the socket is writable.
    read_wants_write: bool = False
    #: The last write stopped on "want read": it goes on when the socket is readable.
    write_wants_read: bool = False

    def wanted(self, queued: bool) -> tuple[bool, bool]:
        """(wait for readable, wait for writable) given whether writes are queued.

        A read that waits for writability is not also woken by readability: the socket stays
        readable and the loop would spin."""
        want_read = (self.reading and not self.read_wants_write) or self.write_wants_read
        want_write = self.read_wants_write or (queued and not self.write_wants_read)
        return want_read, want_write


class WriteQueue:
    """Plaintext not yet taken by OpenSSL, oldest first, with high/low marks."""

    def __init__(self, high: int | None = None, low: int | None = None) -> None:
        self._chunks: deque[bytes] = deque()
        self.size = 0
        self.high = DEFAULT_HIGH_WATER_BYTES
        self.low = DEFAULT_LOW_WATER_BYTES
        self._paused = False
        self.set_limits(high, low)

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def __len__(self) -> int:
        return len(self._chunks)

    def set_limits(self, high: int | None = None, low: int | None = None) -> None:
        """As ``asyncio.WriteTransport.set_write_buffer_limits``: ``low`` defaults to a quarter
        of ``high``, ``high`` to four times ``low``; ``ValueError`` unless high >= low >= 0."""
        if high is None:
            high = DEFAULT_HIGH_WATER_BYTES if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self.high, self.low = high, low

    def push(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self.size += len(data)

    def head(self) -> bytes:
        """The chunk to hand to OpenSSL next (the same one again after a retry)."""
        return self._chunks[0]

    def pop(self) -> None:
        """OpenSSL took all of the head."""
        self.size -= len(self._chunks.popleft())

    def clear(self) -> None:
        self._chunks.clear()
        self.size = 0

    def above_high(self) -> bool:
        return self.size > self.high

    def below_low(self) -> bool:
        return self.size <= self.low

    def mark_paused(self) -> bool:
        """True if the writer was not paused yet (so: tell the protocol now)."""
        changed = not self._paused
        self._paused = True
        return changed

    def mark_resumed(self) -> bool:
        """True if the writer was paused (so: tell the protocol it may write again)."""
        changed = self._paused
        self._paused = False
        return changed
