"""webtunnel.servernames: lyrebird 0.8's rotation over a ``servername=`` list, randomness pinned."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import DialStage
from webtunnel_pt.webtunnel.servernames import (
    MAX_ROTATIONS,
    ROTATING_STAGES,
    RotationRegistry,
)

NAMES = ("a.example", "b.example", "c.example")


def registry(start: int = 0, limit: int = MAX_ROTATIONS) -> RotationRegistry:
    return RotationRegistry(choose=lambda n: start % n, limit=limit)


@pytest.mark.parametrize("start", [0, 1, 2])
def test_starts_where_the_chooser_says(start: int) -> None:
    assert registry(start).rotation(NAMES).current() == NAMES[start]


def test_chooser_is_asked_with_the_list_length_once_per_list() -> None:
    asked: list[int] = []

    def choose(n: int) -> int:
        asked.append(n)
        return n - 1

    names = RotationRegistry(choose=choose)
    assert names.rotation(NAMES).current() == "c.example"
    assert names.rotation(NAMES).current() == "c.example"
    assert names.rotation(NAMES[:2]).current() == "b.example"
    assert asked == [3, 2]


def test_default_chooser_stays_in_range() -> None:
    for _ in range(50):
        assert RotationRegistry().rotation(NAMES).current() in NAMES


def test_a_failure_moves_to_the_next_name_and_wraps() -> None:
    rotation = registry(1).rotation(NAMES)
    seen = []
    for _ in range(4):
        name = rotation.current()
        seen.append(name)
        assert rotation.failed(name)
    assert seen == ["b.example", "c.example", "a.example", "b.example"]


def test_concurrent_failures_with_the_same_name_move_once() -> None:
    """Three dials took a.example; all fail: the rotation moves to b.example, not past it."""
    rotation = registry(0).rotation(NAMES)
    taken = [rotation.current() for _ in range(3)]
    assert [rotation.failed(name) for name in taken] == [True, False, False]
    assert rotation.current() == "b.example"


def test_a_late_failure_of_an_old_name_does_not_skip_the_current_one() -> None:
    rotation = registry(0).rotation(NAMES)
    rotation.failed("a.example")
    assert not rotation.failed("a.example")  # a dial that started before the move
    assert not rotation.failed("nobody.example")
    assert rotation.current() == "b.example"


def test_state_is_per_distinct_list_and_kept() -> None:
    names = registry(0)
    first = names.rotation(NAMES)
    first.failed("a.example")
    assert names.rotation(NAMES) is first
    assert names.rotation(NAMES).current() == "b.example"
    other = names.rotation(("b.example", "a.example"))
    assert other is not first and other.current() == "b.example"
    assert len(names) == 2


def test_registry_is_bounded_and_forgets_the_least_recently_used() -> None:
    names = registry(0, limit=2)
    one, two = (
        names.rotation(("1.example", "x.example")),
        names.rotation(("2.example", "x.example")),
    )
    one.failed("1.example")
    names.rotation(("1.example", "x.example"))  # used again: now the most recent
    names.rotation(("3.example", "x.example"))  # evicts 2
    assert len(names) == 2
    assert names.rotation(("1.example", "x.example")) is one
    assert names.rotation(("2.example", "x.example")) is not two  # made afresh


def test_only_tls_and_upgrade_failures_rotate() -> None:
    assert ROTATING_STAGES == {DialStage.TLS_HANDSHAKE, DialStage.UPGRADE}
