"""Router status entries of the microdesc consensus, ``r`` through ``m`` (dir-spec §3.4.1
"r", "a", "s", "v", "pr", "w", "p", "m" and the microdesc-flavour changes of §3.4.2;
tor-link.md §10.2).

    RouterStatusReader(known_flags).read(block) -> RouterStatus

The ``r`` line of this flavour has no descriptor digest: nickname, RSA identity (base64, 20
bytes), publication time, IPv4, ORPort, DirPort. ``m`` is the base64 SHA-256 of the relay's
microdescriptor alone. ``r``, ``s`` and ``m`` are required; ``v``, ``pr``, ``w``, ``p`` at most
once; ``a`` a few times; unknown keywords are skipped. The reader remembers the ``s`` lines,
``pr`` lines and publication times it has parsed, since relays share a few hundred of them:
that sharing is most of a large consensus's parse speed and memory. Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from webtunnel_pt.errors import ConsensusError
from webtunnel_pt.tor import docfields as f
from webtunnel_pt.tor.netdoc import NetdocItem

#: Flags in ``known-flags`` (tor 0.4.9 knows 15; each ``s`` line is a subset).
MAX_KNOWN_FLAGS = 64
#: ``a`` lines per router entry: tor publishes at most one; a few spare for future use.
MAX_ALT_ADDRESSES = 4
#: Distinct ``s`` lines, ``pr`` lines and publication times remembered while parsing (relays
#: share a few hundred at most); parsing each once is most of the router section's speed.
MAX_MEMO_ENTRIES = 4096
#: The keywords of a router entry.
ROUTER_KEYWORDS = frozenset({"r", "a", "s", "v", "pr", "w", "p", "m"})


@dataclass(frozen=True, slots=True)
class RouterStatus:
    """One relay's entry (``r`` .. ``m``) in the microdesc consensus."""

    nickname: str
    identity: bytes  # 20 bytes, SHA-1 of the relay's RSA identity key
    published: int  # POSIX seconds
    address: str  # IPv4
    or_port: int
    dir_port: int  # 0: none
    ipv6: tuple[tuple[str, int], ...]  # ``a`` lines
    flags: frozenset[str]
    version: str | None
    protocols: Mapping[str, frozenset[int]]
    bandwidth: int | None  # ``w Bandwidth=``, the path-selection weight (kB/s)
    measured: int | None
    unmeasured: bool
    policy: f.PortPolicy | None  # ``p``: absent from the microdesc flavour in practice
    microdesc_digest: bytes  # 32 bytes, SHA-256 of the relay's microdescriptor


def _args(item: NetdocItem, low: int, high: int | None = None) -> tuple[str, ...]:
    return f.item_args(item, low, low if high is None else high, ConsensusError)


class RouterStatusReader:
    """Reads the router entries of one consensus. It remembers parsed ``s`` lines, ``pr`` lines
    and publication times by their text, shared between entries (the values are immutable),
    bounded by :data:`MAX_MEMO_ENTRIES` each."""

    def __init__(self, known_flags: frozenset[str]) -> None:
        self.known_flags = known_flags
        self.flags: dict[tuple[str, ...], frozenset[str]] = {}
        self.protocols: dict[tuple[str, ...], Mapping[str, frozenset[int]]] = {}
        self.times: dict[tuple[str, str], int] = {}

    def read(self, block: Sequence[NetdocItem]) -> RouterStatus:
        """Parse one router entry: its items, the ``r`` item first."""
        return _router(block, self)

    def published(self, day: str, clock: str) -> int:
        """A router's publication time: tor ≥ 0.4.8 writes the same one for every relay."""
        when = self.times.get((day, clock))
        if when is None:
            when = f.parse_time(day, clock, "router publication time", ConsensusError)
            if len(self.times) < MAX_MEMO_ENTRIES:
                self.times[day, clock] = when
        return when

    def flag_set(self, item: NetdocItem) -> frozenset[str]:
        args = _args(item, 0, MAX_KNOWN_FLAGS)
        flags = self.flags.get(args)
        if flags is None:
            flags = frozenset(args)
            if not flags <= self.known_flags:
                raise ConsensusError("router entry has a flag not in known-flags")
            if len(self.flags) < MAX_MEMO_ENTRIES:
                self.flags[args] = flags
        return flags

    def protocol_map(self, item: NetdocItem) -> Mapping[str, frozenset[int]]:
        args = _args(item, 0, f.MAX_PROTOCOLS)
        protocols = self.protocols.get(args)
        if protocols is None:
            parsed = f.parse_protocols(args, "router pr", ConsensusError)
            protocols = MappingProxyType(parsed)
            if len(self.protocols) < MAX_MEMO_ENTRIES:
                self.protocols[args] = protocols
        return protocols


_NO_PROTOCOLS: Mapping[str, frozenset[int]] = MappingProxyType({})


def _weights(item: NetdocItem) -> tuple[int | None, int | None, bool]:
    pairs = f.parse_int_pairs(item.args, "consensus w line", ConsensusError)
    bandwidth, measured = pairs.get("Bandwidth"), pairs.get("Measured")
    if (bandwidth is not None and bandwidth < 0) or (measured is not None and measured < 0):
        raise ConsensusError("consensus w line has a negative bandwidth")
    return bandwidth, measured, pairs.get("Unmeasured", 0) == 1


def _router(block: Sequence[NetdocItem], memo: RouterStatusReader) -> RouterStatus:
    nickname, identity, day, clock, address, or_port, dir_port = _args(block[0], 7)
    once: dict[str, NetdocItem] = {}
    ipv6: list[tuple[str, int]] = []
    for item in block[1:]:
        if item.keyword == "a":
            if len(ipv6) >= MAX_ALT_ADDRESSES:
                raise ConsensusError(f"router entry has more than {MAX_ALT_ADDRESSES} 'a' lines")
            ipv6.append(f.parse_ipv6_port(_args(item, 1)[0], "router a line", ConsensusError))
        elif item.keyword in once:
            raise ConsensusError(f"router entry repeats {item.keyword!r}")
        elif item.keyword in ROUTER_KEYWORDS:
            once[item.keyword] = item
    for required in ("s", "m"):
        if required not in once:
            raise ConsensusError(f"router entry {nickname[:19]!r} has no {required!r} line")
    flags = memo.flag_set(once["s"])
    # The microdesc flavour's m line is the digest alone (method >= 13 drops the method list).
    digest = f.b64_fixed(_args(once["m"], 1)[0], 32, "router m digest", ConsensusError)
    bandwidth, measured, unmeasured = _weights(once["w"]) if "w" in once else (None, None, False)
    policy = None
    if "p" in once:
        policy = f.parse_port_policy(_args(once["p"], 2), "router p line", ConsensusError)
    protocols = memo.protocol_map(once["pr"]) if "pr" in once else _NO_PROTOCOLS
    version = " ".join(_args(once["v"], 0, 16)) if "v" in once else None
    if not 1 <= len(nickname) <= 19 or not nickname.isascii() or not nickname.isalnum():
        raise ConsensusError("router nickname is not 1-19 alphanumeric characters")
    return RouterStatus(
        nickname=nickname,
        identity=f.b64_fixed(identity, 20, "router identity", ConsensusError),
        published=memo.published(day, clock),
        address=f.parse_ipv4(address, "router address", ConsensusError),
        or_port=f.parse_port(or_port, "router ORPort", ConsensusError, allow_zero=False),
        dir_port=f.parse_port(dir_port, "router DirPort", ConsensusError, allow_zero=True),
        ipv6=tuple(ipv6),
        flags=flags,
        version=version,
        protocols=protocols,
        bandwidth=bandwidth,
        measured=measured,
        unmeasured=unmeasured,
        policy=policy,
        microdesc_digest=digest,
    )
