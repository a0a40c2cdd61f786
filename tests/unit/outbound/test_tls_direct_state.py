"""The SSLSocket transport's bookkeeping (``outbound/tls_direct_state.py``): which socket
readiness it waits for, and its write queue's retry and flow-control rules."""

from __future__ import annotations

import pytest

from webtunnel_pt.outbound.tls_direct_state import (
    DEFAULT_HIGH_WATER_BYTES,
    DEFAULT_LOW_WATER_BYTES,
    Interest,
    WriteQueue,
)

# -- Interest -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reading", "read_wants_write", "write_wants_read", "queued", "expected"),
    [
        (False, False, False, False, (False, False)),  # idle, paused
        (True, False, False, False, (True, False)),  # waiting for data
        (True, False, False, True, (True, True)),  # data to read and a write to finish
        (False, False, False, True, (False, True)),  # paused reader still flushes writes
        # a read that needs the socket writable (a key update to answer) waits for that only:
        # the socket stays readable, so waiting on readability too would spin the loop
        (True, True, False, False, (False, True)),
        (True, True, False, True, (False, True)),
        # a write that needs the socket readable waits for that, even with reading paused,
        # and not for writability
        (False, False, True, True, (True, False)),
        (True, False, True, True, (True, False)),
    ],
)
def test_interest_wanted(
    reading: bool,
    read_wants_write: bool,
    write_wants_read: bool,
    queued: bool,
    expected: tuple[bool, bool],
) -> None:
    interest = Interest(reading, read_wants_write, write_wants_read)
    assert interest.wanted(queued) == expected


# -- WriteQueue -----------------------------------------------------------------------------------


def test_queue_defaults_are_asyncios() -> None:
    queue = WriteQueue()
    assert (queue.high, queue.low) == (64 * 1024, 16 * 1024)
    assert (DEFAULT_HIGH_WATER_BYTES, DEFAULT_LOW_WATER_BYTES) == (65536, 16384)
    assert not queue and len(queue) == 0 and queue.size == 0


def test_queue_head_stays_the_same_object_until_popped() -> None:
    """SSL_write must be retried with the same bytes: the head is not split or merged."""
    queue = WriteQueue()
    first, second = b"a" * 100, b"b" * 50
    queue.push(first)
    queue.push(second)
    queue.push(b"")  # nothing to write: not queued
    assert len(queue) == 2 and queue.size == 150
    assert queue.head() is first
    assert queue.head() is first  # a retry sees it again
    queue.pop()
    assert queue.head() is second and queue.size == 50
    queue.pop()
    assert not queue and queue.size == 0


def test_queue_marks_pause_and_resume_once() -> None:
    queue = WriteQueue(high=100, low=10)
    queue.push(b"x" * 100)
    assert not queue.above_high()  # at the mark is not past it
    queue.push(b"y")
    assert queue.above_high()
    assert queue.mark_paused() is True
    assert queue.mark_paused() is False  # told once
    assert not queue.below_low()
    queue.pop()
    assert queue.size == 1 and queue.below_low()
    assert queue.mark_resumed() is True
    assert queue.mark_resumed() is False


def test_queue_clear_drops_everything() -> None:
    queue = WriteQueue()
    queue.push(b"abc")
    queue.clear()
    assert not queue and queue.size == 0


@pytest.mark.parametrize(
    ("high", "low", "expected"),
    [
        (None, None, (65536, 16384)),
        (1000, None, (1000, 250)),
        (None, 1000, (4000, 1000)),
        (0, 0, (0, 0)),
        (10, 10, (10, 10)),
    ],
)
def test_queue_limits_follow_asyncio(
    high: int | None, low: int | None, expected: tuple[int, int]
) -> None:
    queue = WriteQueue()
    queue.set_limits(high, low)
    assert (queue.high, queue.low) == expected


@pytest.mark.parametrize(("high", "low"), [(10, 11), (-1, None), (None, -4)])
def test_queue_refuses_inverted_or_negative_limits(high: int | None, low: int | None) -> None:
    with pytest.raises(ValueError, match="must be >="):
        WriteQueue(high, low)
