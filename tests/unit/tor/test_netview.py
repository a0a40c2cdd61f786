"""tor.netview: a verified consensus joined with its microdescriptors, as path selection reads
it (relays, lacking ones, params with tor's defaults and bounds, bandwidth-weights)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import dir_capture
from tests.support import netdocs as nd
from webtunnel_pt.errors import LocalProtocolError
from webtunnel_pt.tor.consensus import parse_consensus
from webtunnel_pt.tor.consensus_verify import VerifiedConsensus, verify_consensus
from webtunnel_pt.tor.docfields import REJECT_ALL, PortPolicy
from webtunnel_pt.tor.keycert import parse_key_certificates
from webtunnel_pt.tor.microdesc import parse_microdescs
from webtunnel_pt.tor.netview import PARAM_BOUNDS, Flag, NetworkView, build_network_view

AUTHS = nd.authorities()[:3]
NOW = nd.VALID_AFTER + 60


def verified(doc: bytes) -> VerifiedConsensus:
    certs = [a.certificate() for a in AUTHS]
    return verify_consensus(parse_consensus(doc), [a.v3ident for a in AUTHS], certs, NOW)


def make_view(
    micros: list[nd.Microdesc], entries: list[str], served: list[int], **kw: str
) -> NetworkView:
    doc = nd.sign_consensus(nd.consensus_body(entries, **kw), [(a, "sha256") for a in AUTHS])
    v = verified(doc)
    wanted = [r.microdesc_digest for r in v.consensus.routers]
    batch = parse_microdescs(b"".join(micros[i].text for i in served), wanted)
    return build_network_view(v, batch.microdescs)


def sorted_entries(micros: list[nd.Microdesc], **flags: str) -> list[str]:
    order = sorted(range(len(micros)), key=nd.router_identity)
    return [
        nd.router_entry(i, micros[i].digest, flags=flags.get(str(i), "Fast Running Valid"))
        for i in order
    ]


def test_relays_join_their_microdescs_and_the_rest_are_listed_as_lacking() -> None:
    micros = [
        nd.microdesc(0, family="$AA other", family_ids="ed25519:x", policy="reject 25"),
        nd.microdesc(1, policy=None, policy6="accept 443", ed25519=False),
        nd.microdesc(2),
    ]
    view = make_view(micros, sorted_entries(micros, **{"0": "Exit Fast Running Valid"}), [0, 1])
    assert (view.valid_after, view.fresh_until, view.valid_until) == (
        nd.VALID_AFTER,
        nd.VALID_AFTER + 3600,
        nd.VALID_AFTER + 3 * 3600,
    )
    by_name = {r.nickname: r for r in view.relays}
    assert set(by_name) == {"relay0", "relay1"}
    assert [s.nickname for s in view.lacking_microdesc] == ["relay2"]
    assert view.missing_digests() == [micros[2].digest]
    exit_relay = by_name["relay0"]
    assert exit_relay.rsa_identity == nd.router_identity(0)
    assert exit_relay.ed25519_identity == hashlib.sha256(b"ed0").digest()
    assert exit_relay.ntor_onion_key == hashlib.sha256(b"ntor0").digest()
    assert (exit_relay.address, exit_relay.or_port) == ("10.0.0.1", 9001)
    assert exit_relay.ipv6 == ("2001:db8::1", 9001)
    assert exit_relay.has(Flag.EXIT) and not exit_relay.has(Flag.BAD_EXIT)
    assert exit_relay.family == {"$AA", "other"} and exit_relay.family_ids == {"ed25519:x"}
    assert exit_relay.allows_port(80) and not exit_relay.allows_port(25)
    assert exit_relay.bandwidth == 1000 and not exit_relay.unmeasured
    assert exit_relay.supports("Relay", 4) and not exit_relay.supports("Relay", 5)
    assert not exit_relay.supports("Nope", 1)
    other = by_name["relay1"]
    assert other.policy == REJECT_ALL and other.policy6 == PortPolicy(True, ((443, 443),))
    assert other.ed25519_identity is None and not other.has(Flag.EXIT)
    assert view.bandwidth_weights["Wmg"] == 4194


def test_no_ed_consensus_drops_the_ed25519_identity() -> None:
    micros = [nd.microdesc(0)]
    view = make_view(micros, sorted_entries(micros, **{"0": "NoEdConsensus Running Valid"}), [0])
    assert view.relays[0].ed25519_identity is None


def test_two_entries_may_share_one_microdesc() -> None:
    shared = nd.microdesc(7)
    order = sorted(range(2), key=nd.router_identity)
    entries = [nd.router_entry(i, shared.digest) for i in order]
    view = make_view([shared], entries, [0])
    assert len(view.relays) == 2 and view.lacking_microdesc == ()


def test_params_use_tor_defaults_and_bounds() -> None:
    micros = [nd.microdesc(0)]
    view = make_view(
        micros, sorted_entries(micros), [0], params="bwweightscale=0 circwindow=5000 other=3"
    )
    assert view.param("circwindow") == 1000  # clamped to its maximum
    assert view.param("bwweightscale") == 1  # clamped to its minimum
    assert view.param("sendme_emit_min_version") == 0  # absent: the default
    assert view.params["other"] == 3
    with pytest.raises(LocalProtocolError):
        view.param("other")


@given(st.sampled_from(sorted(PARAM_BOUNDS)), st.integers(-(2**31), 2**31 - 1))
def test_a_param_always_lands_inside_its_bounds(name: str, value: int) -> None:
    view = NetworkView(0, 1, 2, (), (), {}, {name: value})
    _default, low, high = PARAM_BOUNDS[name]
    assert low <= view.param(name) <= high
    if low <= value <= high:
        assert view.param(name) == value


def test_needs_refetch_after_fresh_until() -> None:
    view = NetworkView(0, 100, 200, (), (), {}, {})
    assert not view.needs_refetch(99) and view.needs_refetch(100)


def test_captured_network_view() -> None:
    """The private network's tor 0.4.9 documents, end to end: every relay usable, the exits
    named by the capture allow port 443, and their declared family is mutual."""
    ids = [bytes.fromhex(a["v3ident"]) for a in dir_capture.CAPTURE["authorities"]]
    certs = parse_key_certificates(dir_capture.KEYS_ALL)
    consensus = parse_consensus(dir_capture.CONSENSUS)
    verified_c = verify_consensus(consensus, ids, certs, dir_capture.CAPTURED_AT)
    wanted = [r.microdesc_digest for r in consensus.routers]
    view = build_network_view(
        verified_c, parse_microdescs(dir_capture.MICRODESCS, wanted).microdescs
    )
    assert view.lacking_microdesc == () and len(view.relays) == len(consensus.routers)
    exits = {r.nickname: r for r in view.relays if r.has(Flag.EXIT)}
    expected = {r["nickname"] for r in dir_capture.CAPTURE["relays"] if r["is_exit"]}
    assert set(exits) == expected
    assert all(r.allows_port(443) for r in exits.values())
    assert not any(r.allows_port(443) for r in view.relays if r.nickname not in expected)
    fingerprints = {r.nickname: "$" + r.rsa_identity.hex().upper() for r in exits.values()}
    for name, relay in exits.items():
        others = {fp for other, fp in fingerprints.items() if other != name}
        assert others <= relay.family
    assert view.param("circwindow") == 1000  # the private network sets no params
