"""tor.path: the exit and the middle after a bridge, weighted by the consensus
bandwidth-weights (chi-square over many seeded draws), and the rules no path may break
(family, /16, /32, exit policy, the bridge, ``exclude``) checked on random views by an
independent checker written here."""

from __future__ import annotations

import ipaddress
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import dir_capture
from webtunnel_pt.errors import NoPathError, WebtunnelError
from webtunnel_pt.tor.consensus import parse_consensus
from webtunnel_pt.tor.consensus_verify import verify_consensus
from webtunnel_pt.tor.docfields import REJECT_ALL, PortPolicy
from webtunnel_pt.tor.keycert import parse_key_certificates
from webtunnel_pt.tor.microdesc import parse_microdescs
from webtunnel_pt.tor.netview import NetworkView, Relay, build_network_view
from webtunnel_pt.tor.path import (
    LONG_LIVED_PORTS,
    ChosenPath,
    PathHop,
    PathSelector,
    choose_path,
    hop_of,
)

ACCEPT_ALL = PortPolicy(accept=True, ranges=((1, 65535),))
WEB = PortPolicy(accept=True, ranges=((80, 80), (443, 443)))
PROTOCOLS_049 = {  # tor 0.4.9.11, as the private test network's relays publish it
    "Link": frozenset({3, 4, 5}),
    "Relay": frozenset({2, 3, 4, 5, 6}),
    "FlowCtrl": frozenset({1, 2}),
}
WEIGHTS = {
    "Wbd": 0, "Wbe": 0, "Wbg": 4000, "Wbm": 10000, "Wdb": 10000, "Web": 10000, "Wed": 3000,
    "Wee": 7000, "Weg": 10000, "Wem": 10000, "Wgb": 10000, "Wgd": 0, "Wgg": 6000, "Wgm": 6000,
    "Wmb": 10000, "Wmd": 1000, "Wme": 2000, "Wmg": 4000, "Wmm": 10000,
}  # fmt: skip
BASE_FLAGS = frozenset({"Running", "Valid", "Fast", "Stable"})
BRIDGE = PathHop(
    rsa_identity=b"\xbb" * 20,
    ed25519_identity=b"\xbb" * 32,
    address="198.51.100.7",
    ipv6=None,
    family=frozenset(),
    family_ids=frozenset(),
)


def rsa(i: int) -> bytes:
    return i.to_bytes(20, "big")


def relay(
    i: int,
    *,
    flags: Sequence[str] = (),
    base: frozenset[str] = BASE_FLAGS,
    bw: int = 1000,
    address: str | None = None,
    ipv6: str | None = None,
    policy: PortPolicy = REJECT_ALL,
    family: Sequence[str] = (),
    family_ids: Sequence[str] = (),
    protocols: Mapping[str, frozenset[int]] = PROTOCOLS_049,
    unmeasured: bool = False,
    nickname: str | None = None,
) -> Relay:
    return Relay(
        nickname=nickname or f"relay{i}",
        rsa_identity=rsa(i),
        ed25519_identity=i.to_bytes(32, "big"),
        address=address or f"10.{i % 256}.{i // 256}.1",
        or_port=9001,
        ipv6=(ipv6, 9001) if ipv6 else None,
        flags=base | frozenset(flags),
        bandwidth=bw,
        measured=None,
        unmeasured=unmeasured,
        protocols=protocols,
        policy=policy,
        policy6=REJECT_ALL,
        family=frozenset(family),
        family_ids=frozenset(family_ids),
        ntor_onion_key=bytes(32),
        microdesc_digest=bytes(32),
    )


def exit_relay(
    i: int, *, flags: Sequence[str] = (), policy: PortPolicy = ACCEPT_ALL, **kw: Any
) -> Relay:
    return relay(i, flags=["Exit", *flags], policy=policy, **kw)


def view_of(
    relays: Sequence[Relay],
    weights: Mapping[str, int] | None = None,
    params: Mapping[str, int] | None = None,
) -> NetworkView:
    return NetworkView(
        valid_after=0,
        fresh_until=3600,
        valid_until=3 * 3600,
        relays=tuple(sorted(relays, key=lambda r: r.rsa_identity)),
        lacking_microdesc=(),
        bandwidth_weights=dict(WEIGHTS if weights is None else weights),
        params=dict(params or {}),
    )


# ---- chi-square -----------------------------------------------------------------------------


def chi2_survival(df: int, x: float) -> float:
    """P(X > x) for X ~ chi-square(df), in closed form: the regularized upper gamma function
    Q(df/2, x/2), summed up from df = 2 (exp) or df = 1 (erfc) by Q(a+1) = Q(a) + term."""
    half = x / 2.0
    if df % 2 == 0:
        q, a = math.exp(-half), 1.0
    else:
        q, a = math.erfc(math.sqrt(half)), 0.5
    while a < df / 2.0:
        q += math.exp(a * math.log(half) - half - math.lgamma(a + 1.0))
        a += 1.0
    return q


def chi2_critical(df: int, alpha: float = 1e-6) -> float:
    """The upper critical value: the x with P(X > x) = alpha, by bisection. alpha = 1e-6 means
    a correct sampler fails once in a million seeds; the seeds here are fixed, so the tests
    are deterministic."""
    low, high = 0.0, 1000.0
    for _ in range(200):
        mid = (low + high) / 2.0
        low, high = (mid, high) if chi2_survival(df, mid) > alpha else (low, mid)
    return low


def chi2(counts: Counter[bytes], expected: Mapping[bytes, float]) -> float:
    n = sum(counts.values())
    assert set(counts) <= set(expected), "a relay with zero expected weight was drawn"
    return sum((counts[k] - n * p) ** 2 / (n * p) for k, p in expected.items())


def normalised(weights: Mapping[bytes, float]) -> dict[bytes, float]:
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items() if w > 0}


def test_chi2_critical_matches_the_tables() -> None:
    # Standard chi-square tables: (df, alpha) -> upper critical value.
    for df, alpha, tabled in ((1, 0.05, 3.841), (2, 0.05, 5.991), (5, 0.05, 11.070),
                              (6, 0.01, 16.812), (10, 0.001, 29.588)):  # fmt: skip
        assert chi2_critical(df, alpha) == pytest.approx(tabled, abs=0.001)


DRAWS = 20_000


def test_exit_draws_follow_wee_and_wed_times_bandwidth() -> None:
    exits = [
        exit_relay(1, bw=100),
        exit_relay(2, bw=400),
        exit_relay(3, bw=1500),
        exit_relay(4, flags=["Guard"], bw=1000),
        exit_relay(5, flags=["Guard"], bw=3000),
        exit_relay(6, bw=700, policy=WEB),
    ]
    selector = PathSelector(view_of([*exits, relay(50), relay(51)]))
    rng = random.Random(14)
    counts = Counter(selector.choose(first_hop=BRIDGE, port=443, rng=rng).exit.rsa_identity
                     for _ in range(DRAWS))  # fmt: skip
    expected = normalised(
        {r.rsa_identity: (3000 if "Guard" in r.flags else 7000) * r.bandwidth for r in exits}
    )
    df = len(expected) - 1
    assert chi2(counts, expected) < chi2_critical(df)
    # The test has power: plain bandwidth (no weights) is rejected by the same draws.
    plain = normalised({r.rsa_identity: float(r.bandwidth) for r in exits})
    assert chi2(counts, plain) > chi2_critical(df)


def test_middle_draws_follow_wmm_wmg_wme_wmd_times_bandwidth() -> None:
    # One usable exit; the middle candidates carry every flag combination. Exit-flagged
    # middles reject every port (so they are no exits) but still weigh Wme / Wmd; a BadExit
    # counts as a non-exit (Wmm), as tor's compute_weighted_bandwidths treats it.
    the_exit = exit_relay(1, bw=5000)
    middles = [
        relay(10, bw=1000),
        relay(11, bw=3000),
        relay(12, flags=["Guard"], bw=2000),
        relay(13, flags=["Guard"], bw=4000),
        relay(14, flags=["Exit"], bw=6000),
        relay(15, flags=["Exit", "Guard"], bw=8000),
        relay(16, flags=["Exit", "BadExit"], bw=500),
    ]
    selector = PathSelector(view_of([the_exit, *middles]))
    rng = random.Random(15)
    paths = [selector.choose(first_hop=BRIDGE, port=80, rng=rng) for _ in range(DRAWS)]
    assert {p.exit.rsa_identity for p in paths} == {the_exit.rsa_identity}
    counts = Counter(p.middle.rsa_identity for p in paths)

    def weight(r: Relay) -> int:
        is_exit = "Exit" in r.flags and "BadExit" not in r.flags
        is_guard = "Guard" in r.flags
        w = {(True, True): 1000, (False, True): 4000, (True, False): 2000}.get(
            (is_exit, is_guard), 10000
        )
        return w * r.bandwidth

    expected = normalised({r.rsa_identity: float(weight(r)) for r in middles})
    assert chi2(counts, expected) < chi2_critical(len(expected) - 1)
    plain = normalised({r.rsa_identity: float(r.bandwidth) for r in middles})
    assert chi2(counts, plain) > chi2_critical(len(plain) - 1)


def test_missing_weights_fall_back_to_plain_bandwidth() -> None:
    exits = [exit_relay(1, bw=100), exit_relay(2, flags=["Guard"], bw=300), exit_relay(3, bw=600)]
    weights = {k: v for k, v in WEIGHTS.items() if k != "Wed"}  # one exit weight missing
    selector = PathSelector(view_of([*exits, relay(50)], weights))
    rng = random.Random(16)
    counts = Counter(
        selector.choose(first_hop=BRIDGE, port=443, rng=rng).exit.rsa_identity for _ in range(DRAWS)
    )
    expected = normalised({r.rsa_identity: float(r.bandwidth) for r in exits})
    assert chi2(counts, expected) < chi2_critical(len(expected) - 1)


def test_zero_total_weight_is_uniform_and_zero_weight_loses_to_positive() -> None:
    # The private test network: Bandwidth=0 everywhere, Wmd=0 for its Exit+Guard relays.
    exits = [exit_relay(i, flags=["Guard"], bw=0, unmeasured=True) for i in range(1, 5)]
    selector = PathSelector(view_of([*exits, relay(50, bw=0, unmeasured=True)]))
    rng = random.Random(17)
    counts = Counter(
        selector.choose(first_hop=BRIDGE, port=443, rng=rng).exit.rsa_identity for _ in range(DRAWS)
    )
    expected = {r.rsa_identity: 0.25 for r in exits}
    assert chi2(counts, expected) < chi2_critical(3)
    # A relay of positive weight is always preferred over weight-0 ones (tor does the same).
    selector = PathSelector(view_of([*exits, relay(50, bw=0), relay(51, bw=5)]))
    for _ in range(200):
        assert selector.choose(first_hop=BRIDGE, port=443, rng=rng).middle.rsa_identity == rsa(51)


def test_weights_above_the_scale_are_capped_and_unmeasured_relays_capped() -> None:
    # Wee above the scale counts as the scale (tor's networkstatus_get_bw_weight); an
    # unmeasured exit is capped at maxunmeasuredbw (here 100) because others are measured.
    exits = [exit_relay(1, bw=1000), exit_relay(2, bw=1000, unmeasured=True)]
    weights = {**WEIGHTS, "Wee": 50_000}
    selector = PathSelector(view_of([*exits, relay(50)], weights, {"maxunmeasuredbw": 100}))
    rng = random.Random(18)
    counts = Counter(
        selector.choose(first_hop=BRIDGE, port=443, rng=rng).exit.rsa_identity for _ in range(DRAWS)
    )
    expected = normalised({rsa(1): 1000.0, rsa(2): 100.0})
    assert chi2(counts, expected) < chi2_critical(1)


# ---- rules, checked independently ------------------------------------------------------------


def _prefixes(address: str | None, ipv6: str | None) -> set[bytes]:
    """IPv4 /16 and IPv6 /32 prefixes, tagged with the IP version."""
    out = set()
    for text in (address, ipv6):
        if text:
            addr = ipaddress.ip_address(text)
            out.add(bytes([addr.version]) + addr.packed[: 2 if addr.version == 4 else 4])
    return out


def _declares(a: PathHop, b: PathHop) -> bool:
    for member in a.family:
        if member.startswith("$") and member[1:41].upper() == b.rsa_identity.hex().upper():
            return True
        if not member.startswith("$") and b.nickname and member.lower() == b.nickname.lower():
            return True
    return False


def may_share_circuit(a: PathHop, b: PathHop, *, distinct_subnets: bool = True) -> bool:
    if a.rsa_identity == b.rsa_identity:
        return False
    if a.ed25519_identity is not None and a.ed25519_identity == b.ed25519_identity:
        return False
    if distinct_subnets and _prefixes(a.address, a.ipv6) & _prefixes(b.address, b.ipv6):
        return False
    if a.family_ids & b.family_ids:
        return False
    return not (_declares(a, b) and _declares(b, a))


def check_path(
    path: ChosenPath,
    view: NetworkView,
    first_hop: PathHop,
    port: int | None,
    *,
    distinct_subnets: bool = True,
    exclude: frozenset[bytes] = frozenset(),
) -> None:
    hops = [first_hop, hop_of(path.middle), hop_of(path.exit)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert may_share_circuit(hops[i], hops[j], distinct_subnets=distinct_subnets)
    for r in (path.middle, path.exit):
        assert r in view.relays
        assert r.rsa_identity not in exclude
        assert {"Running", "Valid", "Fast"} <= r.flags
        assert "Relay" not in r.protocols or r.supports("Relay", 2)
        if port in LONG_LIVED_PORTS:
            assert "Stable" in r.flags
    assert "Exit" in path.exit.flags and "BadExit" not in path.exit.flags
    assert "MiddleOnly" not in path.exit.flags
    assert path.exit.allows_port(port) if port is not None else path.exit.policy.allows_any


SUBNETS = ["10.1", "10.2", "10.3", "192.0", "203.0", "127.0", "8.8", "9.9", "1.1", "2.2"]
FLAGS = ("Exit", "Guard", "BadExit", "MiddleOnly")
FLAG_ODDS = (  # Exit often, BadExit and MiddleOnly rarely
    st.integers(0, 2).map(bool),
    st.booleans(),
    st.integers(0, 9).map(lambda n: n == 0),
    st.integers(0, 9).map(lambda n: n == 0),
)
V6_NETS = ["2001:db8", "2001:db9", "2a01:4f8"]
PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def networks(draw: st.DrawFn) -> tuple[NetworkView, PathHop, frozenset[bytes]]:
    n = draw(st.integers(2, 24))
    family_groups = draw(st.lists(st.integers(0, 4), min_size=n + 1, max_size=n + 1))
    relays = []
    for i in range(1, n + 1):
        group = family_groups[i]
        members = [
            rsa(j).hex().upper() for j in range(1, n + 2) if family_groups[j % (n + 1)] == group
        ]
        one_sided = draw(st.booleans())
        family = [f"${m}" for m in members] if group and not one_sided else []
        if draw(st.integers(0, 9)) == 0:
            family.append(draw(st.sampled_from(["relay1", "RELAY2", "bridge"])))
        relays.append(
            relay(
                i,
                flags=[f for f, p in zip(FLAGS, draw(st.tuples(*FLAG_ODDS)), strict=True) if p],
                base=BASE_FLAGS - {draw(st.sampled_from([*sorted(BASE_FLAGS), "", "", ""]))},
                bw=draw(st.integers(0, 5000)),
                address=f"{draw(st.sampled_from(SUBNETS))}.{i % 256}.{draw(st.integers(1, 254))}",
                ipv6=(f"{draw(st.sampled_from(V6_NETS))}::{i:x}" if draw(st.booleans()) else None),
                policy=draw(st.sampled_from([ACCEPT_ALL, WEB, REJECT_ALL])),
                family=family,
                family_ids=[f"ed25519:id{group}"] if group and draw(st.booleans()) else [],
                protocols=draw(
                    st.sampled_from([PROTOCOLS_049] * 4 + [{}, {"Relay": frozenset({1})}])
                ),
                nickname=f"relay{i}",
            )
        )
    bridge_group = family_groups[0]
    bridge = PathHop(
        rsa_identity=rsa(n + 1) if draw(st.booleans()) else rsa(draw(st.integers(1, n))),
        ed25519_identity=draw(st.sampled_from([None, (1).to_bytes(32, "big"), b"\xee" * 32])),
        address=f"{draw(st.sampled_from(SUBNETS))}.9.9",
        ipv6=f"{draw(st.sampled_from(V6_NETS))}::b" if draw(st.booleans()) else None,
        family=frozenset(
            f"${rsa(j).hex().upper()}" for j in range(1, n + 1) if family_groups[j] == bridge_group
        )
        if bridge_group
        else frozenset(),
        family_ids=frozenset({f"ed25519:id{bridge_group}"}) if bridge_group else frozenset(),
        nickname="bridge",
    )
    exclude = frozenset(rsa(i) for i in draw(st.sets(st.integers(1, n), max_size=3)))
    return view_of(relays), bridge, exclude


@PROPERTY
@given(
    networks(),
    st.sampled_from([None, 22, 80, 443, 6667, 9999]),
    st.booleans(),
    st.integers(0, 2**32),
)
def test_no_path_breaks_a_rule(
    net: tuple[NetworkView, PathHop, frozenset[bytes]],
    port: int | None,
    distinct_subnets: bool,
    seed: int,
) -> None:
    view, bridge, exclude = net
    selector = PathSelector(view)
    rng = random.Random(seed)
    for _ in range(5):
        try:
            path = selector.choose(
                first_hop=bridge,
                port=port,
                rng=rng,
                distinct_subnets=distinct_subnets,
                exclude=exclude,
            )
        except NoPathError as exc:
            if "exit relay allows" in str(exc) or "exits allowing" in str(exc):
                # Said "no exit": brute force agrees that no exit is possible at all.
                assert not any(
                    _exit_possible(r, view, bridge, port, distinct_subnets, exclude)
                    for r in view.relays
                )
            return
        check_path(path, view, bridge, port, distinct_subnets=distinct_subnets, exclude=exclude)


def _exit_possible(
    r: Relay,
    view: NetworkView,
    bridge: PathHop,
    port: int | None,
    distinct_subnets: bool,
    exclude: frozenset[bytes],
) -> bool:
    usable = {"Running", "Valid", "Fast", "Exit"} <= r.flags and not (
        {"BadExit", "MiddleOnly"} & r.flags
    )
    if port in LONG_LIVED_PORTS:
        usable = usable and "Stable" in r.flags
    usable = usable and ("Relay" not in r.protocols or r.supports("Relay", 2))
    allows = r.allows_port(port) if port is not None else r.policy.allows_any
    return (
        usable
        and allows
        and r.rsa_identity not in exclude
        and may_share_circuit(bridge, hop_of(r), distinct_subnets=distinct_subnets)
    )


# ---- specific rules -------------------------------------------------------------------------


def test_loopback_network_needs_distinct_subnets_off() -> None:
    # The private test network: every relay and the bridge on 127.0.0.1.
    relays = [exit_relay(1, address="127.0.0.1"), relay(2, address="127.0.0.1")]
    bridge = PathHop(b"\xbb" * 20, None, "127.0.0.1", None, frozenset(), frozenset())
    view = view_of(relays)
    with pytest.raises(NoPathError, match="exits allowing port 80"):
        choose_path(view, first_hop=bridge, port=80, rng=random.Random(1))
    path = choose_path(
        view, first_hop=bridge, port=80, rng=random.Random(1), distinct_subnets=False
    )
    assert (path.exit.rsa_identity, path.middle.rsa_identity) == (rsa(1), rsa(2))


def test_ipv6_slash_32_is_one_subnet() -> None:
    relays = [exit_relay(1, ipv6="2001:db8:1::1"), relay(2, ipv6="2001:db8:ffff::2"), relay(3)]
    selector = PathSelector(view_of(relays))
    rng = random.Random(2)
    for _ in range(100):
        assert selector.choose(first_hop=BRIDGE, port=443, rng=rng).middle.rsa_identity == rsa(3)


def test_family_must_be_mutual_and_family_ids_need_only_be_shared() -> None:
    fp = {i: f"${rsa(i).hex().upper()}" for i in range(1, 5)}
    relays = [
        exit_relay(1, family=[fp[1], fp[2], fp[3]]),
        relay(2, family=[fp[1], fp[2]]),  # mutual with 1: never together
        relay(3),  # listed by 1 but lists nobody: allowed
        relay(4, family_ids=["ed25519:shared"]),
        relay(5, family=["RELAY1"]),  # lists 1 by nickname; 1 does not list 5: allowed
    ]
    bridge = PathHop(
        b"\xbb" * 20, None, "198.51.100.7", None, frozenset(), frozenset({"ed25519:shared"})
    )
    selector = PathSelector(view_of(relays))
    rng = random.Random(3)
    middles = {
        selector.choose(first_hop=bridge, port=443, rng=rng).middle.rsa_identity for _ in range(300)
    }
    assert middles == {rsa(3), rsa(5)}
    # use-family-ids=0 turns the family-ids rule off, as the consensus param does for tor.
    selector = PathSelector(view_of(relays, params={"use-family-ids": 0}))
    middles = {
        selector.choose(first_hop=bridge, port=443, rng=rng).middle.rsa_identity for _ in range(300)
    }
    assert middles == {rsa(3), rsa(4), rsa(5)}


def test_nickname_family_entries_match_case_insensitively() -> None:
    relays = [exit_relay(1, family=["Relay2"]), relay(2, family=["RELAY1"]), relay(3)]
    selector = PathSelector(view_of(relays))
    rng = random.Random(4)
    for _ in range(100):
        assert selector.choose(first_hop=BRIDGE, port=443, rng=rng).middle.rsa_identity == rsa(3)


def test_the_bridge_is_never_chosen_by_either_identity() -> None:
    relays = [
        exit_relay(1),
        exit_relay(2, flags=["Guard"]),
        relay(3),
        relay(4),
    ]
    bridge_rsa = PathHop(rsa(2), None, "198.51.100.7", None, frozenset(), frozenset())
    bridge_ed = PathHop(
        b"\xbb" * 20, (3).to_bytes(32, "big"), "198.51.100.7", None, frozenset(), frozenset()
    )
    selector = PathSelector(view_of(relays))
    rng = random.Random(5)
    for _ in range(200):
        p = selector.choose(first_hop=bridge_rsa, port=443, rng=rng)
        assert rsa(2) not in (p.exit.rsa_identity, p.middle.rsa_identity)
        p = selector.choose(first_hop=bridge_ed, port=443, rng=rng)
        assert rsa(3) not in (p.exit.rsa_identity, p.middle.rsa_identity)


def test_exclude_and_unusable_relays_are_never_chosen() -> None:
    relays = [
        exit_relay(1),
        exit_relay(2, flags=["BadExit"]),
        exit_relay(3, flags=["MiddleOnly"]),
        exit_relay(4, protocols={"Relay": frozenset({1})}),
        relay(5),
        relay(6, base=frozenset({"Running", "Valid"})),  # not Fast
        relay(7, base=frozenset({"Valid", "Fast"})),  # not Running
        relay(8, protocols={}),  # no pr line: tor allows unknown protocols
        relay(9),
    ]
    selector = PathSelector(view_of(relays))
    rng = random.Random(6)
    seen: Counter[tuple[str, bytes]] = Counter()
    for _ in range(500):
        p = selector.choose(first_hop=BRIDGE, port=443, rng=rng, exclude=frozenset({rsa(9)}))
        seen[("exit", p.exit.rsa_identity)] += 1
        seen[("middle", p.middle.rsa_identity)] += 1
    assert {k for k in seen if k[0] == "exit"} == {("exit", rsa(1))}
    assert {k[1] for k in seen if k[0] == "middle"} == {rsa(2), rsa(3), rsa(5), rsa(8)}


def test_long_lived_ports_need_stable_hops() -> None:
    nonstable = frozenset({"Running", "Valid", "Fast"})
    relays = [exit_relay(1), exit_relay(2, base=nonstable), relay(3), relay(4, base=nonstable)]
    selector = PathSelector(view_of(relays))
    rng = random.Random(7)
    for _ in range(100):
        p = selector.choose(first_hop=BRIDGE, port=22, rng=rng)
        assert (p.exit.rsa_identity, p.middle.rsa_identity) == (rsa(1), rsa(3))
    assert {
        selector.choose(first_hop=BRIDGE, port=443, rng=rng).middle.rsa_identity for _ in range(200)
    } >= {rsa(4)}


# ---- NoPathError ----------------------------------------------------------------------------


def test_no_exit_allows_the_port() -> None:
    view = view_of([exit_relay(1, policy=WEB), relay(2)])
    with pytest.raises(
        NoPathError, match=r"no Running, Valid, Fast exit relay allows port 25 \(of 2 relays\)"
    ):
        choose_path(view, first_hop=BRIDGE, port=25, rng=random.Random(1))


def test_no_stable_exit_for_a_long_lived_port() -> None:
    view = view_of([exit_relay(1, base=frozenset({"Running", "Valid", "Fast"})), relay(2)])
    with pytest.raises(
        NoPathError, match="no Running, Valid, Fast Stable exit relay allows port 6667"
    ):
        choose_path(view, first_hop=BRIDGE, port=6667, rng=random.Random(1))


def test_no_exit_at_all_for_a_resolve() -> None:
    view = view_of([relay(1), relay(2), exit_relay(3, policy=REJECT_ALL)])
    with pytest.raises(NoPathError, match="exit relay allows any port"):
        choose_path(view, first_hop=BRIDGE, port=None, rng=random.Random(1))


def test_every_exit_excluded() -> None:
    view = view_of([exit_relay(1), exit_relay(2), relay(3)])
    with pytest.raises(NoPathError, match="all 2 exits allowing port 443 are excluded"):
        choose_path(
            view,
            first_hop=BRIDGE,
            port=443,
            rng=random.Random(1),
            exclude=frozenset({rsa(1), rsa(2)}),
        )


def test_no_middle_left() -> None:
    fp1 = f"${rsa(1).hex().upper()}"
    fp2 = f"${rsa(2).hex().upper()}"
    view = view_of([exit_relay(1, family=[fp1, fp2]), relay(2, family=[fp1, fp2])])
    with pytest.raises(NoPathError, match=r"all 2 middle candidates .* the exit \(relay1\)"):
        choose_path(view, first_hop=BRIDGE, port=443, rng=random.Random(1))


def test_bad_port_and_error_class() -> None:
    view = view_of([exit_relay(1), relay(2)])
    with pytest.raises(NoPathError, match="port 0 is not a TCP port"):
        choose_path(view, first_hop=BRIDGE, port=0, rng=random.Random(1))
    assert issubclass(NoPathError, WebtunnelError)


def test_default_rng_is_the_system_one() -> None:
    view = view_of([exit_relay(1), relay(2)])
    path = choose_path(view, first_hop=BRIDGE, port=443)
    assert (path.exit.rsa_identity, path.middle.rsa_identity) == (rsa(1), rsa(2))


def test_hop_of_carries_what_the_rules_read() -> None:
    r = relay(3, ipv6="2001:db8::3", family=["$AB"], family_ids=["ed25519:x"])
    hop = hop_of(r)
    assert hop == PathHop(
        rsa_identity=rsa(3),
        ed25519_identity=(3).to_bytes(32, "big"),
        address=r.address,
        ipv6="2001:db8::3",
        family=frozenset({"$AB"}),
        family_ids=frozenset({"ed25519:x"}),
        nickname="relay3",
    )


# ---- the private test network, as tor 0.4.9 published it -----------------------------------


def captured_view() -> NetworkView:
    ids = [bytes.fromhex(a["v3ident"]) for a in dir_capture.CAPTURE["authorities"]]
    certs = parse_key_certificates(dir_capture.KEYS_ALL)
    consensus = parse_consensus(dir_capture.CONSENSUS)
    verified = verify_consensus(consensus, ids, certs, dir_capture.CAPTURED_AT)
    wanted = [r.microdesc_digest for r in consensus.routers]
    return build_network_view(verified, parse_microdescs(dir_capture.MICRODESCS, wanted).microdescs)


def test_the_captured_loopback_network_gives_paths_only_without_distinct_subnets() -> None:
    # Every relay there is on 127.0.0.1, Bandwidth=0 or 3 and Unmeasured; the exits are
    # Exit+Guard (Wmd=0 in the middle). Its tor 0.4.9 relays must all stay usable.
    view = captured_view()
    bridge = PathHop(b"\xbb" * 20, None, "127.0.0.1", None, frozenset(), frozenset())
    selector = PathSelector(view)
    with pytest.raises(NoPathError, match="share its family or subnet"):
        selector.choose(first_hop=bridge, port=80, rng=random.Random(1))
    rng = random.Random(2)
    exits = {r["nickname"] for r in dir_capture.CAPTURE["relays"] if r["is_exit"]}
    seen_exits = set()
    for _ in range(200):
        path = selector.choose(first_hop=bridge, port=80, rng=rng, distinct_subnets=False)
        check_path(path, view, bridge, 80, distinct_subnets=False)
        seen_exits.add(path.exit.nickname)
    assert seen_exits == exits


def test_a_heavy_forbidden_relay_falls_back_to_listing_the_allowed_ones() -> None:
    # Relay 2 holds nearly all the middle weight but shares the exit's /16: every redraw
    # misses, and the explicit listing must still find the light relays, by weight.
    relays = [
        exit_relay(1, address="10.9.0.1"),
        relay(2, address="10.9.0.2", bw=10**9),
        relay(3, bw=1),
        relay(4, bw=0),
    ]
    selector = PathSelector(view_of(relays))
    rng = random.Random(9)
    for _ in range(50):
        assert selector.choose(first_hop=BRIDGE, port=443, rng=rng).middle.rsa_identity == rsa(3)
    # With relay 3 excluded only the weight-0 relay 4 is left: chosen (uniform among zeros).
    path = selector.choose(first_hop=BRIDGE, port=443, rng=rng, exclude=frozenset({rsa(3)}))
    assert path.middle.rsa_identity == rsa(4)
