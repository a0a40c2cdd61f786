"""The input of ``webtunnel-pt probe --file``: a list of bridge lines, read into the distinct
bridges to probe and, for each input line, which one it is.

Sans-I/O: :func:`parse_bridge_list` takes the lines as strings (the caller reads the file) and
returns a :class:`BridgeList`. Rules:

- one bridge line per line, written as in torrc; a leading ``Bridge`` is optional;
- blank lines and lines whose first non-blank character is ``#`` are skipped;
- a line that does not parse (or has no fingerprint) is a :class:`BadLine` with its line
  number; the others still count;
- lines naming the same bridge (the same words, ``Bridge`` and spacing aside, the fingerprint
  in any case) share one :class:`Bridge`: it is probed once and reported for each line.

Line numbers start at 1 and count every line of the input, skipped ones included, so they
match what an editor shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from webtunnel_pt.errors import BridgeArgsError
from webtunnel_pt.webtunnel.bridge import (
    BridgeConfig,
    BridgeLine,
    bridge_config_from_args,
    parse_bridge_line,
)

#: A longer line is reported as malformed unread: real bridge lines are a few hundred
#: characters, and the reader must not hold a file without newlines in memory.
MAX_LINE_CHARS = 8192
#: More input lines are a usage error: the summary keeps one small row per line.
MAX_INPUT_LINES = 100_000


@dataclass(frozen=True)
class Bridge:
    """One distinct bridge: its parsed line and configuration, and where it first appears."""

    index: int
    line_no: int
    line: BridgeLine
    config: BridgeConfig


@dataclass(frozen=True)
class BadLine:
    """An input line that is not a usable bridge line; ``error`` carries no secret."""

    line_no: int
    error: str


@dataclass(frozen=True)
class Entry:
    """One input line that is a bridge line: ``bridge`` indexes :attr:`BridgeList.bridges`;
    ``duplicate_of`` is the line number where the same bridge first appeared, if earlier."""

    line_no: int
    bridge: int
    duplicate_of: int | None = None


@dataclass
class BridgeList:
    """The parsed input: the entries in input order and the distinct bridges they name."""

    entries: list[Entry | BadLine] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(1 for e in self.entries if isinstance(e, Entry) and e.duplicate_of is not None)


class TooManyLines(ValueError):
    """The input has more than :data:`MAX_INPUT_LINES` lines."""


def _key(text: str, line: BridgeLine) -> tuple[str, ...]:
    """What makes two lines the same bridge: every word, in order; spacing, ``Bridge`` and the
    fingerprint's case aside."""
    words = text.split()
    if words[0].lower() == "bridge":
        words.pop(0)
    fingerprint = line.fingerprint or ""
    return tuple(fingerprint if w.upper() == fingerprint else w for w in words)


def parse_entry(text: str) -> tuple[BridgeLine, BridgeConfig]:
    """One bridge line as ``probe`` needs it; raise :class:`BridgeArgsError` otherwise."""
    line = parse_bridge_line(text)
    config = bridge_config_from_args(line.args)
    if line.fingerprint is None:
        raise BridgeArgsError("the bridge line must contain the bridge fingerprint")
    return line, config


def is_skipped(text: str) -> bool:
    """Blank lines and ``#`` comments are not bridge lines."""
    stripped = text.strip()
    return not stripped or stripped.startswith("#")


def parse_bridge_list(lines: Iterable[str]) -> BridgeList:
    """Read every line (numbered from 1); see the module docstring for the rules."""
    result = BridgeList()
    seen: dict[tuple[str, ...], tuple[int, int]] = {}
    for line_no, text in enumerate(lines, start=1):
        if line_no > MAX_INPUT_LINES:
            raise TooManyLines(f"more than {MAX_INPUT_LINES} lines")
        if is_skipped(text):
            continue
        if len(text) > MAX_LINE_CHARS:
            result.entries.append(BadLine(line_no, f"longer than {MAX_LINE_CHARS} characters"))
            continue
        try:
            line, config = parse_entry(text)
        except BridgeArgsError as exc:
            result.entries.append(BadLine(line_no, str(exc)))
            continue
        key = _key(text, line)
        if key in seen:
            index, first = seen[key]
            result.entries.append(Entry(line_no, index, duplicate_of=first))
            continue
        index = len(result.bridges)
        seen[key] = (index, line_no)
        result.bridges.append(Bridge(index, line_no, line, config))
        result.entries.append(Entry(line_no, index))
    return result
