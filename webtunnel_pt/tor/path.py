"""Path selection: the middle and the exit of a 3-hop circuit whose first hop is a bridge,
chosen from a verified :class:`~webtunnel_pt.tor.netview.NetworkView` as tor chooses them
(path-spec §2.2, §2.3; dir-spec §3.4.1 ``bandwidth-weights``, §3.8.3).

    selector = PathSelector(view)          # once per view: candidates and weights cached
    path = selector.choose(first_hop=hop_of_bridge, port=443)
    path.exit, path.middle                 # Relay, Relay
    choose_path(view, first_hop=..., port=443, rng=random.Random(1))   # one-shot wrapper

What is chosen, and how:

- **Candidates** are Running and Valid, carry a 32-byte ntor onion key and speak
  ``Relay=2`` (EXTEND2/CREATE2; a relay whose consensus entry lists no protocols at all is
  allowed, as tor allows unknown versions). They should be Fast, and for a long-lived port
  (tor's ``LongLivedPorts`` default, :data:`LONG_LIVED_PORTS`) Stable too; when no relay
  with those flags can take a position (none has them, or every one breaks a rule below),
  that position is drawn again without them, as tor's ``router_choose_random_node`` falls
  back "to list of all routers" (a freshly started network has no Fast relay yet).
  Running, Valid, the exit rules and every distinctness rule always hold;
  :attr:`ChosenPath.relaxed` says a fallback was used.
- **The exit** has the Exit flag, not BadExit nor MiddleOnly, and its policy summary (``p``)
  accepts ``port``; ``port=None`` (a resolve-only circuit) takes any Exit-flagged relay whose
  summary accepts some port. (tor itself also accepts a relay without the Exit flag whose
  summary allows the port, weighted as a non-exit; the Exit flag is required here.)
- **Weights.** Each candidate weighs ``W * bandwidth`` (path-spec §2.2): in the exit position
  ``Wee`` (Exit) or ``Wed`` (Exit and Guard); in the middle ``Wmm``, ``Wmg`` (Guard), ``Wme``
  (Exit, not BadExit) or ``Wmd`` (both). A weight above ``bwweightscale`` counts as the scale;
  when one of a position's four weights is missing or negative, all four are the scale (plain
  bandwidth), as tor does. The bandwidth is ``Measured=`` when present (votes only), else
  ``Bandwidth=``; when some relay of the view is measured, an ``Unmeasured=1`` relay is capped
  at ``maxunmeasuredbw`` (what the authorities already did; a consensus of only unmeasured
  relays, like the private test network's, is taken as it is). When every candidate left
  weighs 0, the choice is uniform among them (tor's ``choose_array_element_by_weight``).
- **Distinctness** (path-spec §2.2 "We do not choose the same router twice", "two routers in
  the same family", "/16"): no two hops share an RSA or Ed25519 identity; a family (each lists
  the other in ``family`` by ``$HEX`` or nickname, tor's mutual rule; or they share a
  ``family-ids`` entry, proposal 321; the consensus params ``use-family-lists`` and
  ``use-family-ids``, default 1, switch either off as for tor); an IPv4 /16 or an IPv6 /32,
  unless ``distinct_subnets=False`` (tor's ``EnforceDistinctSubnets 0``). The bridge is a hop
  for these checks, so nothing with its identity is chosen. RSA ids in ``exclude`` never are.
- **Order**: the exit first, then the middle, as tor does.

Speed: the weighted candidate lists are built once per view (per port for exits), a relay's
family and subnet keys when it is first drawn, and a draw is a bisection. A draw that breaks a
distinctness rule is drawn again, which samples exactly the restricted distribution; after
:data:`MAX_REDRAWS` misses the allowed candidates are listed explicitly (same distribution).
Sans-I/O.
"""

from __future__ import annotations

import ipaddress
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from webtunnel_pt.errors import NoPathError
from webtunnel_pt.tor.netview import Flag, NetworkView, Relay

#: tor's ``LongLivedPorts`` default: circuits for these want Stable relays (tor's manual).
LONG_LIVED_PORTS = frozenset({21, 22, 706, 1863, 5050, 5190, 5222, 5223, 6523, 6667, 6697, 8300})
#: Subprotocol versions a middle or exit must list: ``Relay=2`` is EXTEND2/CREATE2 (tor-spec
#: §9 "Relay"); tor skips relays "certain they can't do EXTEND2 cells".
REQUIRED_PROTOCOLS: tuple[tuple[str, int], ...] = (("Relay", 2),)
#: Redraws from the cached distribution before listing the allowed candidates explicitly; a
#: draw is rejected only by the two other hops' family, subnet or identity, or ``exclude``.
MAX_REDRAWS = 32
#: Exit tables remembered per port: a client uses a handful of ports; bounded anyway.
MAX_CACHED_PORTS = 256
#: Weights per position: (Exit and Guard, Guard only, Exit only, neither) (dir-spec §3.4.1).
EXIT_WEIGHTS = ("Wed", "Weg", "Wee", "Wem")
MIDDLE_WEIGHTS = ("Wmd", "Wmg", "Wme", "Wmm")
NTOR_KEY_BYTES = 32


@dataclass(frozen=True)
class PathHop:
    """A hop already in the path (the bridge), as the distinctness rules see it."""

    rsa_identity: bytes
    ed25519_identity: bytes | None
    address: str  # IPv4 (or IPv6) address, no port
    ipv6: str | None  # IPv6 address, no port or brackets
    family: frozenset[str]
    family_ids: frozenset[str]
    nickname: str | None = None  # matched against nicknames in other relays' family lines


@dataclass(frozen=True)
class ChosenPath:
    """The relays after the bridge: the middle, then the exit."""

    middle: Relay
    exit: Relay
    #: A hop lacks the Fast (or, for a long-lived port, Stable) flag: no relay with it could
    #: take that position.
    relaxed: bool = False


def hop_of(relay: Relay) -> PathHop:
    """A relay of the view as a hop (e.g. to check a path someone else chose)."""
    return PathHop(
        rsa_identity=relay.rsa_identity,
        ed25519_identity=relay.ed25519_identity,
        address=relay.address,
        ipv6=relay.ipv6[0] if relay.ipv6 else None,
        family=relay.family,
        family_ids=relay.family_ids,
        nickname=relay.nickname,
    )


# ---- distinctness ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Member:
    """What the distinctness rules compare, precomputed."""

    rsa: bytes
    ed: bytes | None
    nick: str | None  # lower case
    v4: bytes | None  # IPv4 /16
    v6: bytes | None  # IPv6 /32
    fam_rsa: frozenset[bytes]
    fam_nicks: frozenset[str]  # lower case
    fam_ids: frozenset[str]


def _subnets(*addresses: str | None) -> tuple[bytes | None, bytes | None]:
    """(IPv4 /16, IPv6 /32) prefixes of the given addresses (unparsable ones are skipped)."""
    v4 = v6 = None
    for text in addresses:
        if not text:
            continue
        try:
            addr = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            continue
        if addr.version == 4 and v4 is None:
            v4 = addr.packed[:2]
        elif addr.version == 6 and v6 is None:
            v6 = addr.packed[:4]
    return v4, v6


def _parse_family(family: frozenset[str]) -> tuple[frozenset[bytes], frozenset[str]]:
    """``$HEX`` (optionally ``$HEX=name`` / ``$HEX~name``) members and bare nicknames."""
    ids: set[bytes] = set()
    nicks: set[str] = set()
    for member in family:
        if member.startswith("$"):
            try:
                ids.add(bytes.fromhex(member[1:41]))
            except ValueError:
                continue
        elif member:
            nicks.add(member.lower())
    return frozenset(ids), frozenset(nicks)


class _FamilyCache:
    """Parsed family lines by value: members of one family share one line."""

    def __init__(self) -> None:
        self._parsed: dict[frozenset[str], tuple[frozenset[bytes], frozenset[str]]] = {}

    def __call__(self, family: frozenset[str]) -> tuple[frozenset[bytes], frozenset[str]]:
        parsed = self._parsed.get(family)
        if parsed is None:
            parsed = self._parsed[family] = _parse_family(family)
        return parsed


def _member(
    hop: PathHop | Relay,
    families: Callable[[frozenset[str]], tuple[frozenset[bytes], frozenset[str]]],
) -> _Member:
    if isinstance(hop, Relay):
        v4, v6 = _subnets(hop.address, hop.ipv6[0] if hop.ipv6 else None)
    else:
        v4, v6 = _subnets(hop.address, hop.ipv6)
    fam_rsa, fam_nicks = families(hop.family)
    return _Member(
        rsa=hop.rsa_identity,
        ed=hop.ed25519_identity,
        nick=hop.nickname.lower() if hop.nickname else None,
        v4=v4,
        v6=v6,
        fam_rsa=fam_rsa,
        fam_nicks=fam_nicks,
        fam_ids=hop.family_ids,
    )


def _lists(a: _Member, b: _Member) -> bool:
    return b.rsa in a.fam_rsa or (b.nick is not None and b.nick in a.fam_nicks)


@dataclass(frozen=True, slots=True)
class _Rules:
    distinct_subnets: bool
    use_family_lists: bool
    use_family_ids: bool

    def conflict(self, a: _Member, b: _Member) -> bool:
        """Whether ``a`` and ``b`` may not share a circuit."""
        if a.rsa == b.rsa or (a.ed is not None and a.ed == b.ed):
            return True
        if self.distinct_subnets and (
            (a.v4 is not None and a.v4 == b.v4) or (a.v6 is not None and a.v6 == b.v6)
        ):
            return True
        if self.use_family_ids and a.fam_ids and not a.fam_ids.isdisjoint(b.fam_ids):
            return True
        return self.use_family_lists and _lists(a, b) and _lists(b, a)


# ---- weighted tables ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    """Candidates of one position with their cumulative weights."""

    relays: tuple[Relay, ...]
    cumulative: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    @classmethod
    def of(cls, pairs: Iterable[tuple[Relay, int]]) -> _Table:
        listed = list(pairs)
        return cls(tuple(r for r, _ in listed), tuple(accumulate(w for _, w in listed)))

    def draw(self, rng: random.Random) -> Relay:
        if self.total == 0:
            return self.relays[rng.randrange(len(self.relays))]
        return self.relays[bisect_right(self.cumulative, rng.randrange(self.total))]


def _position_weights(view: NetworkView, names: Sequence[str]) -> tuple[int, ...]:
    """The four weights of a position, capped at the scale; all the scale when one is
    missing or negative (tor's fallback to plain bandwidth)."""
    scale = view.param("bwweightscale")
    values = [view.bandwidth_weights.get(name, -1) for name in names]
    if any(v < 0 for v in values):
        return (scale,) * len(names)
    return tuple(min(v, scale) for v in values)


# Flag names as plain strings: ``Relay.has`` goes through the enum, 8 times per relay.
_RUNNING, _VALID, _FAST, _STABLE = (
    Flag.RUNNING.value,
    Flag.VALID.value,
    Flag.FAST.value,
    Flag.STABLE.value,
)
_EXIT, _BAD_EXIT, _GUARD, _MIDDLE_ONLY = (
    Flag.EXIT.value,
    Flag.BAD_EXIT.value,
    Flag.GUARD.value,
    Flag.MIDDLE_ONLY.value,
)


def _flag_index(relay: Relay) -> int:
    """0: Exit and Guard, 1: Guard, 2: Exit, 3: neither; BadExit does not count as Exit."""
    is_exit = _EXIT in relay.flags and _BAD_EXIT not in relay.flags
    is_guard = _GUARD in relay.flags
    return (0 if is_exit else 1) if is_guard else (2 if is_exit else 3)


#: The flags a position wants (uptime and capacity, tor's CRN_NEED_UPTIME/CAPACITY), and none
#: for the fallback.
_NEED_FAST = frozenset({_FAST})
_NEED_FAST_STABLE = frozenset({_FAST, _STABLE})
_NEED_NOTHING: frozenset[str] = frozenset()


def _usable(relay: Relay) -> bool:
    """Running, Valid, an ntor key, and the protocols a circuit through it needs."""
    return (
        _RUNNING in relay.flags
        and _VALID in relay.flags
        and len(relay.ntor_onion_key) == NTOR_KEY_BYTES
        and (not relay.protocols or all(relay.supports(p, v) for p, v in REQUIRED_PROTOCOLS))
    )


def _is_exit(relay: Relay) -> bool:
    return (
        _EXIT in relay.flags
        and _BAD_EXIT not in relay.flags
        and _MIDDLE_ONLY not in relay.flags
        and relay.policy.allows_any
    )


def _port_text(port: int | None) -> str:
    return "any port" if port is None else f"port {port}"


class PathSelector:
    """Chooses paths from one view; caches candidates and weights (build one per view)."""

    def __init__(self, view: NetworkView) -> None:
        self.view = view
        self._families = _FamilyCache()
        self._members: dict[bytes, _Member] = {}  # filled as relays are drawn
        self._use_family_lists = min(max(view.params.get("use-family-lists", 1), 0), 1) == 1
        self._use_family_ids = min(max(view.params.get("use-family-ids", 1), 0), 1) == 1
        usable = [r for r in view.relays if _usable(r)]
        self._bandwidths = self._bandwidth_of(view, usable)
        exit_w = _position_weights(view, EXIT_WEIGHTS)
        middle_w = _position_weights(view, MIDDLE_WEIGHTS)
        self._exits = [
            (r, exit_w[_flag_index(r)] * self._bandwidths[r.rsa_identity])
            for r in usable
            if _is_exit(r)
        ]
        middles = [(r, middle_w[_flag_index(r)] * self._bandwidths[r.rsa_identity]) for r in usable]
        self._middles = {
            needs: _Table.of((r, w) for r, w in middles if needs <= r.flags)
            for needs in (_NEED_FAST, _NEED_FAST_STABLE, _NEED_NOTHING)
        }
        self._exit_tables: dict[tuple[int | None, frozenset[str]], _Table] = {}

    @staticmethod
    def _bandwidth_of(view: NetworkView, relays: Sequence[Relay]) -> dict[bytes, int]:
        cap = view.param("maxunmeasuredbw")
        any_measured = any(not r.unmeasured for r in view.relays)
        out = {}
        for relay in relays:
            bw = relay.measured if relay.measured is not None else relay.bandwidth
            if relay.unmeasured and any_measured:
                bw = min(bw, cap)
            out[relay.rsa_identity] = max(bw, 0)
        return out

    def _member(self, relay: Relay) -> _Member:
        member = self._members.get(relay.rsa_identity)
        if member is None:
            member = self._members[relay.rsa_identity] = _member(relay, self._families)
        return member

    def _exit_table(self, port: int | None, needs: frozenset[str]) -> _Table:
        key = (port, needs)
        table = self._exit_tables.get(key)
        if table is None:
            table = _Table.of(
                (r, w)
                for r, w in self._exits
                if (port is None or r.allows_port(port)) and needs <= r.flags
            )
            if len(self._exit_tables) >= MAX_CACHED_PORTS:
                self._exit_tables.clear()
            self._exit_tables[key] = table
        return table

    def choose(
        self,
        *,
        first_hop: PathHop,
        port: int | None,
        rng: random.Random | None = None,
        distinct_subnets: bool = True,
        exclude: frozenset[bytes] = frozenset(),
        exit_relay: Relay | None = None,
    ) -> ChosenPath:
        """The exit, then the middle; raises :class:`NoPathError` saying what was missing.
        Each position is drawn among Fast (and, for a long-lived port, Stable) relays first,
        and without those flags only when none of them can take it. With ``exit_relay`` (a
        conflux set's second leg) only the middle is drawn."""
        if port is not None and not 1 <= port <= 65535:
            raise NoPathError(f"port {port} is not a TCP port")
        rng = rng if rng is not None else random.SystemRandom()
        rules = _Rules(distinct_subnets, self._use_family_lists, self._use_family_ids)
        bridge = _member(first_hop, self._families)
        needs = _NEED_FAST_STABLE if port in LONG_LIVED_PORTS else _NEED_FAST
        relaxed = False
        if exit_relay is None:
            exit_relay = self._pick(self._exit_table(port, needs), [bridge], exclude, rules, rng)
            relaxed = exit_relay is None
        if exit_relay is None:
            exits = self._exit_table(port, _NEED_NOTHING)
            if not exits.relays:
                raise NoPathError(
                    f"no Running, Valid exit relay allows {_port_text(port)}, even without"
                    f" {'/'.join(sorted(needs))} (of {len(self.view.relays)} relays)"
                )
            exit_relay = self._pick(exits, [bridge], exclude, rules, rng)
            if exit_relay is None:
                raise NoPathError(
                    f"all {len(exits.relays)} exits allowing {_port_text(port)} are excluded, "
                    "are the bridge or share its family or subnet"
                )
        hops = [bridge, self._member(exit_relay)]
        middle = self._pick(self._middles[needs], hops, exclude, rules, rng)
        if middle is None:
            relaxed = True
            middles = self._middles[_NEED_NOTHING]  # never empty: the exit is in it
            middle = self._pick(middles, hops, exclude, rules, rng)
            if middle is None:
                raise NoPathError(
                    f"all {len(middles.relays)} middle candidates are excluded, are the bridge "
                    f"or the exit ({exit_relay.nickname}) or share a family or subnet with them"
                )
        return ChosenPath(middle=middle, exit=exit_relay, relaxed=relaxed)

    def _pick(
        self,
        table: _Table,
        hops: Sequence[_Member],
        exclude: frozenset[bytes],
        rules: _Rules,
        rng: random.Random,
    ) -> Relay | None:
        """A weighted draw among the table's relays that conflict with no hop."""

        def allowed(relay: Relay) -> bool:
            if relay.rsa_identity in exclude:
                return False
            member = self._member(relay)
            return not any(rules.conflict(member, hop) for hop in hops)

        if table.total > 0:
            for _ in range(MAX_REDRAWS):
                relay = table.draw(rng)
                if allowed(relay):
                    return relay
        rest = _Table.of(
            (r, w)
            for r, w in zip(table.relays, _weights(table.cumulative), strict=True)
            if allowed(r)
        )
        return rest.draw(rng) if rest.relays else None


def _weights(cumulative: Sequence[int]) -> list[int]:
    return [b - a for a, b in zip((0, *cumulative), cumulative, strict=False)]


def choose_path(
    view: NetworkView,
    *,
    first_hop: PathHop,
    port: int | None,
    rng: random.Random | None = None,
    distinct_subnets: bool = True,
    exclude: frozenset[bytes] = frozenset(),
) -> ChosenPath:
    """One path from ``view`` (builds a :class:`PathSelector`; keep one per view instead
    when choosing often). ``rng`` defaults to :class:`random.SystemRandom` (``os.urandom``)."""
    return PathSelector(view).choose(
        first_hop=first_hop,
        port=port,
        rng=rng,
        distinct_subnets=distinct_subnets,
        exclude=exclude,
    )
