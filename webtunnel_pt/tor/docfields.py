"""Field grammars shared by the microdescriptor consensus and microdescriptors (dir-spec §1.2
"Tokens", §3.4.1 ``r``/``a``/``pr``/``w``/``p``/``params``, §3.3 ``p``/``p6``; tor-link.md §10.2,
§10.3): fixed-size unpadded base64, UTC times, ``[IPv6]:port``, ``k=v`` integer lists, protocol
version ranges and exit-policy port summaries.

Every parser here takes the error class to raise (:class:`ConsensusError` or
:class:`MicrodescError`), so a caller sees only its own document's errors; every count is
bounded and every parse is linear in its input. Sans-I/O.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import ipaddress
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from webtunnel_pt.errors import DirectoryError
from webtunnel_pt.tor.netdoc import NetdocItem

#: Highest subprotocol version tor accepts in a ``pr`` line (tor's MAX_PROTOCOL_VERSION).
MAX_PROTOCOL_VERSION = 63
#: Subprotocol names per ``pr`` line; tor 0.4.9 lists 13, so 64 leaves room for growth.
MAX_PROTOCOLS = 64
#: Port ranges in one ``p``/``p6`` summary; a summary of every other port would need 32,768,
#: which no relay publishes (real ones hold under 100).
MAX_PORT_RANGES = 4096
#: ``k=v`` pairs in ``params`` or ``bandwidth-weights``; the live network uses about 60.
MAX_INT_PAIRS = 512
#: A consensus integer is a signed 32-bit value (dir-spec §3.4.1 ``params``).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})")
_KEYWORD_VALUE = re.compile(r"([A-Za-z0-9_.-]{1,64})=(-?\d{1,10})")
_PROTO_NAME = re.compile(r"[A-Za-z0-9-]{1,32}")
_RANGE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_IPV6_PORT = re.compile(r"\[([0-9A-Fa-f:.]{2,45})\]:(\d{1,5})")
_B64_TEXT = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def item_args(
    item: NetdocItem, low: int, high: int, error: type[DirectoryError]
) -> tuple[str, ...]:
    """The arguments of an item that takes ``low`` to ``high`` of them and no object."""
    if not low <= len(item.args) <= high:
        raise error(f"{item.keyword!r} line has {len(item.args)} arguments")
    if item.obj is not None:
        raise error(f"{item.keyword!r} line carries an unexpected object")
    return item.args


def b64_fixed(text: str, size: int, what: str, error: type[DirectoryError]) -> bytes:
    """Decode canonical base64 of exactly ``size`` bytes, ``=`` padding optional."""
    if len(text) > 4 * size or not _B64_TEXT.fullmatch(text):
        raise error(f"{what} is not base64")
    bare = text.rstrip("=")
    try:
        raw = base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not base64") from exc
    if len(raw) != size or base64.b64encode(raw).decode().rstrip("=") != bare:
        raise error(f"{what} is not {size} bytes of canonical base64")
    return raw


def hex_fixed(text: str, size: int, what: str, error: type[DirectoryError]) -> bytes:
    """Decode exactly ``size`` bytes of hex (either case)."""
    if len(text) != 2 * size:
        raise error(f"{what} is not {size} bytes of hex")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise error(f"{what} is not hex") from exc


def parse_time(day: str, clock: str, what: str, error: type[DirectoryError]) -> int:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) as POSIX seconds."""
    match = _TIME.fullmatch(f"{day} {clock}")
    if match is None:
        raise error(f"{what} is not a YYYY-MM-DD HH:MM:SS time")
    year, month, mday, hour, minute, second = (int(g) for g in match.groups())
    try:
        if not (1 <= month <= 12 and 1 <= mday <= 31 and hour < 24 and minute < 60):
            raise ValueError(what)
        if second > 60 or mday > calendar.monthrange(year, month)[1]:
            raise ValueError(what)
    except ValueError as exc:
        raise error(f"{what} is not a valid date and time") from exc
    return calendar.timegm((year, month, mday, hour, minute, second, 0, 0, 0))


def parse_port(text: str, what: str, error: type[DirectoryError], *, allow_zero: bool) -> int:
    """A decimal TCP port; 0 only where the spec means "none" (DirPort)."""
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise error(f"{what} is not a port number")
    port = int(text)
    if port > 65535 or (port == 0 and not allow_zero):
        raise error(f"{what} {port} is out of range")
    return port


def parse_ipv4(text: str, what: str, error: type[DirectoryError]) -> str:
    """A dotted-quad IPv4 address (no leading zeros, so the text is already canonical)."""
    if _IPV4.fullmatch(text) is None:
        raise error(f"{what} is not an IPv4 address")
    return text


def parse_ipv6_port(text: str, what: str, error: type[DirectoryError]) -> tuple[str, int]:
    """``[IPv6]:port`` (an ``a`` line); an IPv4 address in brackets is refused."""
    match = _IPV6_PORT.fullmatch(text)
    if match is None:
        raise error(f"{what} is not [IPv6]:port")
    try:
        ipaddress.IPv6Address(match.group(1))
    except ValueError as exc:
        raise error(f"{what} is not an IPv6 address") from exc
    # Kept as written (validated): the canonical text costs more than the whole rest of the
    # entry, and a user of the address packs it anyway.
    return match.group(1), parse_port(match.group(2), what, error, allow_zero=False)


def parse_int_pairs(args: Sequence[str], what: str, error: type[DirectoryError]) -> dict[str, int]:
    """``k=v`` pairs, 32-bit signed values, each key once (``params``, ``bandwidth-weights``)."""
    if len(args) > MAX_INT_PAIRS:
        raise error(f"{what} has more than {MAX_INT_PAIRS} entries")
    pairs: dict[str, int] = {}
    for arg in args:
        match = _KEYWORD_VALUE.fullmatch(arg)
        if match is None:
            raise error(f"{what} entry {arg[:40]!r} is not key=integer")
        key, value = match.group(1), int(match.group(2))
        if not INT32_MIN <= value <= INT32_MAX:
            raise error(f"{what} {key} is out of the 32-bit range")
        if key in pairs:
            raise error(f"{what} lists {key} twice")
        pairs[key] = value
    return pairs


def _ranges(
    text: str, low: int, high: int, what: str, error: type[DirectoryError]
) -> list[tuple[int, int]]:
    """``a-b,c,d-e`` as ascending, non-overlapping inclusive ranges inside [low, high]."""
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        match = _RANGE.fullmatch(part)
        if match is None:
            raise error(f"{what} range {part[:20]!r} is malformed")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if not low <= first <= last <= high:
            raise error(f"{what} range {part} is out of order or out of bounds")
        if out and first <= out[-1][1]:
            raise error(f"{what} ranges overlap or are not ascending")
        out.append((first, last))
    return out


def parse_protocols(
    args: Sequence[str], what: str, error: type[DirectoryError]
) -> dict[str, frozenset[int]]:
    """A ``pr`` line: ``Name=1-3,5 Other=2`` as name -> supported versions (dir-spec §3.4.1)."""
    if len(args) > MAX_PROTOCOLS:
        raise error(f"{what} lists more than {MAX_PROTOCOLS} subprotocols")
    protocols: dict[str, frozenset[int]] = {}
    for arg in args:
        name, sep, versions = arg.partition("=")
        if not sep or not _PROTO_NAME.fullmatch(name) or name in protocols:
            raise error(f"{what} entry {arg[:40]!r} is malformed or repeated")
        if not versions:
            protocols[name] = frozenset()
            continue
        ranges = _ranges(versions, 0, MAX_PROTOCOL_VERSION, what, error)
        protocols[name] = frozenset(v for first, last in ranges for v in range(first, last + 1))
    return protocols


@dataclass(frozen=True, slots=True)
class PortPolicy:
    """An exit-policy summary (``p``/``p6``): the listed port ranges are accepted, or rejected
    with every other port accepted (dir-spec §3.4.1 ``p``, §3.3 ``p6``)."""

    accept: bool
    ranges: tuple[tuple[int, int], ...]  # ascending, non-overlapping, inclusive

    def allows_port(self, port: int) -> bool:
        """Whether a stream to ``port`` leaves through this relay under the summary."""
        at = bisect_right(self.ranges, (port, 65535)) - 1
        listed = at >= 0 and self.ranges[at][0] <= port <= self.ranges[at][1]
        return listed == self.accept

    @property
    def allows_any(self) -> bool:
        """Whether any port at all is allowed."""
        return (self.accept and bool(self.ranges)) or (
            not self.accept and self.ranges != ((1, 65535),)
        )


#: What a relay without a ``p``/``p6`` line allows: nothing (dir-spec §3.3 ``p``).
REJECT_ALL = PortPolicy(accept=False, ranges=((1, 65535),))


def parse_port_policy(args: Sequence[str], what: str, error: type[DirectoryError]) -> PortPolicy:
    """``accept|reject PortList`` (dir-spec §3.4.1 ``p``)."""
    if len(args) != 2 or args[0] not in ("accept", "reject"):
        raise error(f"{what} is not 'accept|reject portlist'")
    if args[1].count(",") >= MAX_PORT_RANGES:
        raise error(f"{what} lists more than {MAX_PORT_RANGES} port ranges")
    ranges = _ranges(args[1], 1, 65535, what, error)
    return PortPolicy(accept=args[0] == "accept", ranges=tuple(ranges))


def frozen_mapping(values: Mapping[str, int]) -> Mapping[str, int]:
    """A read-only copy, for the frozen dataclasses that hold ``params`` and weights."""
    return MappingProxyType(dict(values))
