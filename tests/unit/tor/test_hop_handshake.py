"""circuit_pool's handshake choice per hop: ntor v3 for relays with ``Relay=4`` and an Ed25519
identity, ntor otherwise; the exit's congestion-control request only when asked for, spoken
(``FlowCtrl=2``) and on in the consensus (``cc_alg``); and what the relay's ntor v3 message may
say back (prop 324 §10.5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from tests.support.ntor_v3_server import NtorV3Server
from webtunnel_pt.errors import CircuitProtocolError, LocalProtocolError
from webtunnel_pt.tor import circuit_pool
from webtunnel_pt.tor.circuit_pool import hop_handshake, negotiated_cc, wants_congestion_control
from webtunnel_pt.tor.docfields import PortPolicy
from webtunnel_pt.tor.handshake_ext import NO_EXTENSIONS, cc_request
from webtunnel_pt.tor.netview import NetworkView, Relay
from webtunnel_pt.tor.ntor import NtorHandshake
from webtunnel_pt.tor.ntor_v3 import NtorV3Handshake

SERVER = NtorV3Server.generate(seed=9)
PR_049 = {"Relay": frozenset({1, 2, 3, 4}), "FlowCtrl": frozenset({1, 2})}
PR_OLD = {"Relay": frozenset({1, 2, 3}), "FlowCtrl": frozenset({1})}


def relay(
    protocols: Mapping[str, frozenset[int]] = PR_049, ed25519: bytes | None = SERVER.identity
) -> Relay:
    return Relay(
        nickname="r",
        rsa_identity=bytes(range(20)),
        ed25519_identity=ed25519,
        address="10.0.0.1",
        or_port=9001,
        ipv6=None,
        flags=frozenset({"Exit", "Fast", "Running", "Valid"}),
        bandwidth=1000,
        measured=None,
        unmeasured=False,
        protocols=protocols,
        policy=PortPolicy(accept=True, ranges=((1, 65535),)),
        policy6=PortPolicy(accept=False, ranges=()),
        family=frozenset(),
        family_ids=frozenset(),
        ntor_onion_key=SERVER.onion_key,
        microdesc_digest=bytes(32),
    )


def view(**params: int) -> NetworkView:
    return NetworkView(0, 3600, 10800, (), (), {}, dict(params))


def test_relay_4_gets_ntor_v3_with_the_ed25519_id_and_an_empty_extension_list() -> None:
    hs = hop_handshake(relay())
    assert isinstance(hs, NtorV3Handshake) and hs.htype == 3
    assert hs.onionskin[:32] == SERVER.identity
    assert SERVER.respond(hs.onionskin).client_message == NO_EXTENSIONS


def test_cc_request_goes_in_the_v3_message() -> None:
    hs = hop_handshake(relay(), request_cc=True)
    assert SERVER.respond(hs.onionskin).client_message == cc_request()


@pytest.mark.parametrize(
    "target", [relay(PR_OLD), relay(ed25519=None)], ids=["Relay=1-3", "no Ed25519 id"]
)
def test_others_get_ntor(target: Relay) -> None:
    hs = hop_handshake(target)
    assert isinstance(hs, NtorHandshake) and hs.htype == 2
    assert hs.onionskin[:20] == target.rsa_identity
    with pytest.raises(LocalProtocolError):
        hop_handshake(target, request_cc=True)


def test_the_cc_request_is_on_by_default() -> None:
    """On, as in tor 0.4.9's client: conflux needs it, and an exit can't tell us apart by it."""
    assert circuit_pool.REQUEST_CONGESTION_CONTROL is True
    assert wants_congestion_control(relay(), view())


def test_no_cc_request_while_the_switch_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(circuit_pool, "REQUEST_CONGESTION_CONTROL", False)
    assert not wants_congestion_control(relay(), view())


@pytest.mark.parametrize(
    ("target", "params", "wanted"),
    [
        (relay(), {}, True),  # cc_alg defaults to 2 (Vegas), as in tor
        (relay(), {"cc_alg": 2}, True),
        (relay(), {"cc_alg": 0}, False),
        (relay({"Relay": frozenset({4}), "FlowCtrl": frozenset({1})}), {}, False),
        (relay(PR_OLD), {}, False),
        (relay(ed25519=None), {}, False),
    ],
)
def test_cc_request_conditions(
    monkeypatch: pytest.MonkeyPatch, target: Relay, params: dict[str, int], wanted: bool
) -> None:
    monkeypatch.setattr(circuit_pool, "REQUEST_CONGESTION_CONTROL", True)
    assert wants_congestion_control(target, view(**params)) is wanted


# ---- what the exit says back ------------------------------------------------------------------


@dataclass
class FakeLive:
    hop_htypes: list[int] = field(default_factory=lambda: [2, 3, 3])
    enabled: list[int] = field(default_factory=list)

    def enable_congestion_control(self, sendme_inc: int) -> None:
        self.enabled.append(sendme_inc)


def completed(server_message: bytes, *, request_cc: bool) -> NtorV3Handshake:
    hs = hop_handshake(relay(), request_cc=request_cc)
    assert isinstance(hs, NtorV3Handshake)
    hs.complete(SERVER.respond(hs.onionskin, server_message).hdata)
    return hs


def circuit_params(hs: NtorV3Handshake, *, requested_cc: bool, **params: int) -> None:
    circuit_pool._circuit_params(
        FakeLive(),  # type: ignore[arg-type]
        hs,
        requested_cc=requested_cc,
        view=view(**params),
    )


def test_no_response_leaves_the_hop_alone() -> None:
    circuit_params(completed(NO_EXTENSIONS, request_cc=False), requested_cc=False)
    circuit_params(completed(NO_EXTENSIONS, request_cc=True), requested_cc=True)


def test_response_without_a_request_is_refused() -> None:
    hs = completed(b"\x01\x02\x01\x1f", request_cc=False)
    with pytest.raises(CircuitProtocolError, match="did not ask"):
        circuit_params(hs, requested_cc=False)


def test_malformed_server_message_is_refused() -> None:
    hs = completed(b"\x05garbage", request_cc=False)
    with pytest.raises(CircuitProtocolError):
        circuit_params(hs, requested_cc=False)


def test_sendme_inc_far_from_the_consensus_is_refused() -> None:
    hs = completed(b"\x01\x02\x01\x40", request_cc=True)
    with pytest.raises(CircuitProtocolError, match="cc_sendme_inc"):
        circuit_params(hs, requested_cc=True)


def test_accepted_cc_goes_to_negotiated_cc(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        circuit_pool, "negotiated_cc", lambda live, hop, inc: calls.append((hop, inc))
    )
    circuit_params(completed(b"\x01\x02\x01\x20", request_cc=True), requested_cc=True)
    assert calls == [(2, 32)]


def test_negotiated_cc_enables_it_on_the_exit() -> None:
    live = FakeLive()
    negotiated_cc(live, 2, 31)  # type: ignore[arg-type]
    assert live.enabled == [31]


def test_negotiated_cc_only_on_the_last_hop() -> None:
    with pytest.raises(LocalProtocolError, match="hop 2, not the last"):
        negotiated_cc(FakeLive(), 1, 31)  # type: ignore[arg-type]
