"""probe's consensus layer over real loopback TLS: a scripted bridge (tests/support/dir_responder.py)
serves a synthetic signed network's consensus, key certificates and microdescriptors over the
channel, and the layer reports what it verified, uses the state directory's cache on a second
run, and fails with exit status 19 naming the check and the authorities when the v3idents are
wrong, asking the bridge for nothing but the consensus."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import pytest

from tests.support.dir_responder import CONSENSUS_PATH, DirResponder
from tests.support.fake_network import FakeNetwork, make_network
from tests.support.scripted_relay import run, with_relay
from webtunnel_pt.probe import run as probe
from webtunnel_pt.probe.consensus import ConsensusOptions
from webtunnel_pt.probe.report import EXIT_CODES, LayerFailed, LayerResult
from webtunnel_pt.tor.dircache import CERTIFICATES_FILE, CONSENSUS_FILE, MICRODESCS_FILE
from webtunnel_pt.tor.options import parse_authority_options
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args, parse_bridge_line

FP = "2B936CD554AF5B16678DE517CC3866AA11170BC4"
SECRET = "s3cretPathValue"


@functools.cache
def network() -> FakeNetwork:
    return make_network(20, seed=5)


def consensus_options(
    net: FakeNetwork, state_dir: Path | None, *, wrong_v3idents: bool = False, timeout_s: float = 10
) -> ConsensusOptions:
    authorities = parse_authority_options(net.dir_authority_lines)
    if wrong_v3idents:
        authorities = tuple(
            dataclasses.replace(a, v3ident=bytes(19) + bytes([i + 1]))
            for i, a in enumerate(authorities)
        )
    return ConsensusOptions(
        authorities, state_dir=state_dir, timeout_s=timeout_s, authorities_source="--dir-authority"
    )


def run_layer(tmp_path: Path, responder: DirResponder, options: ConsensusOptions) -> LayerResult:
    """The consensus layer of a probe, over a channel to the scripted bridge."""
    net = responder.net
    line = parse_bridge_line(f"webtunnel 192.0.2.1:443 {FP} url=https://x.example/{SECRET}")
    runner = probe.Probe(
        line,
        bridge_config_from_args(line.args),
        clock=lambda: net.valid_after + 60,
        consensus=options,
    )
    outcome: list[Any] = []

    async def main() -> None:
        async with with_relay(tmp_path, responder.script) as connect:
            async with await connect() as channel:
                try:
                    await runner._layer("consensus", runner._consensus(channel, options))
                except LayerFailed as failed:
                    outcome.append(failed)

    run(main())
    if outcome:
        raise outcome[0]
    return runner.report.layers[-1]


def test_the_layer_reports_the_verified_directory(tmp_path: Path) -> None:
    net = network()
    responder = DirResponder(net, consensus_encoding="deflate")
    result = run_layer(tmp_path, responder, consensus_options(net, None))
    assert (result.layer, result.status) == ("consensus", "ok")
    details = result.details
    assert details["signatures"] == "3/3" and details["authorities_source"] == "--dir-authority"
    assert details["consensus_relays"] == details["relays"] == 20
    exits = [r for r in net.relays if "Exit" in r.flags and "BadExit" not in r.flags]
    assert details["exits"] == len(exits) > 0
    assert details["requests"] == len(responder.paths) == 3
    assert details["cache"] == {"enabled": False}
    assert "signatures 3/3 (--dir-authority); 20 relays" in result.summary
    assert result.summary.endswith("cache off")


def test_a_second_run_takes_certificates_and_microdescs_from_the_cache(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    first = run_layer(tmp_path, DirResponder(net), consensus_options(net, state))
    assert first.details["cache"] == {
        "enabled": True,
        "consensus": "network",
        "certificates_fetched": 3,
        "certificates_cached": 0,
        "microdescs_fetched": 20,
        "microdescs_cached": 0,
        "problems": [],
    }
    assert {p.name for p in state.iterdir()} >= {CONSENSUS_FILE, CERTIFICATES_FILE, MICRODESCS_FILE}

    responder = DirResponder(net)
    second = run_layer(tmp_path, responder, consensus_options(net, state))
    cache = second.details["cache"]
    assert cache["consensus"] == "network"  # the probe always asks the bridge for it
    assert (cache["certificates_fetched"], cache["certificates_cached"]) == (0, 3)
    assert (cache["microdescs_fetched"], cache["microdescs_cached"]) == (0, 20)
    assert responder.paths == [CONSENSUS_PATH]
    assert "cache: consensus fetched, certificates 0 fetched + 3 cached" in second.summary


def test_wrong_v3idents_fail_the_layer_naming_check_and_authorities(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    responder = DirResponder(net)
    with pytest.raises(LayerFailed) as info:
        run_layer(tmp_path, responder, consensus_options(net, state, wrong_v3idents=True))
    failed = info.value
    assert failed.exit_code == EXIT_CODES["consensus"] == 19
    assert failed.error.startswith("signatures check failed: consensus signed validly by 0 of 3")
    assert failed.details["check"] == "signatures"
    named = failed.details["failed_authorities"]
    assert [a["nickname"] for a in named] == [a.nickname for a in net.authorities]
    assert [a["v3ident_prefix"] for a in named] == ["00000000"] * 3
    assert responder.paths == [CONSENSUS_PATH]  # no certificates, no microdescriptors
    assert not (state / CONSENSUS_FILE).exists() and not (state / MICRODESCS_FILE).exists()


def test_a_silent_bridge_fails_the_layer_at_its_own_deadline(tmp_path: Path) -> None:
    net = network()
    responder = DirResponder(net, stall={CONSENSUS_PATH})
    with pytest.raises(LayerFailed) as info:
        run_layer(tmp_path, responder, consensus_options(net, None, timeout_s=0.5))
    assert info.value.exit_code == 19
    assert info.value.details["check"] == "fetch (timed out)"
    assert "timed out" in info.value.error or "not complete" in info.value.error


def test_a_refusing_bridge_fails_the_layer_naming_the_step(tmp_path: Path) -> None:
    net = network()
    responder = DirResponder(net, refuse={CONSENSUS_PATH: "404 Not found"})
    with pytest.raises(LayerFailed) as info:
        run_layer(tmp_path, responder, consensus_options(net, None))
    assert info.value.details["check"] == "fetch"
    assert "fetch check failed: consensus: the bridge answered HTTP 404" in info.value.error
