"""tor.dirmgr over real loopback TLS: a scripted bridge serves a synthetic signed network's
consensus, key certificates and microdescriptors on BEGIN_DIR streams of one CREATE_FAST
circuit (tests/support/dir_responder.py), and records every path asked for."""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import time
import zlib
from pathlib import Path

import pytest

from tests.support.dir_responder import CONSENSUS_PATH, DirResponder
from tests.support.fake_network import FakeNetwork, make_key_certificate, make_network
from tests.support.scripted_relay import run, with_relay
from webtunnel_pt.errors import (
    ConsensusSignatureError,
    DirectoryError,
    HandshakeTimeout,
    KeyCertificateError,
)
from webtunnel_pt.tor import dirmgr
from webtunnel_pt.tor.authorities import DirAuthority, parse_dir_authorities
from webtunnel_pt.tor.directory import MAX_DIR_RESPONSE_BYTES
from webtunnel_pt.tor.dirmgr import MICRODESCS_PER_REQUEST, fetch_network_view, microdesc_paths
from webtunnel_pt.tor.dirreport import DirectoryResult
from webtunnel_pt.tor.netview import Flag


@functools.cache
def network() -> FakeNetwork:
    return make_network(20, seed=3)


def authorities(net: FakeNetwork) -> tuple[DirAuthority, ...]:
    return parse_dir_authorities(net.dir_authority_lines)


def fetch(
    tmp_path: Path,
    responder: DirResponder,
    auths: tuple[DirAuthority, ...] | None = None,
    timeout_s: float = 10,
) -> DirectoryResult:
    net = responder.net
    result: list[DirectoryResult] = []

    async def main() -> None:
        async with with_relay(tmp_path, responder.script) as connect:
            async with await connect() as channel:
                result.append(
                    await fetch_network_view(
                        channel,
                        authorities(net) if auths is None else auths,
                        now=lambda: net.valid_after + 60,
                        timeout_s=timeout_s,
                    )
                )

    run(main())
    return result[0]


def paths_of(responder: DirResponder, prefix: str) -> list[str]:
    return [p for p in responder.paths if p.startswith(prefix)]


@pytest.mark.parametrize("encoding", ["identity", "deflate", "x-tor-lzma"])
def test_the_whole_directory_comes_through_the_bridge(tmp_path: Path, encoding: str) -> None:
    net = network()
    responder = DirResponder(net, consensus_encoding=encoding)
    result = fetch(tmp_path, responder)
    view, report = result.view, result.report
    assert len(view.relays) == 20 and not view.lacking_microdesc
    served = {hashlib.sha256(r.microdesc).digest() for r in net.relays}
    assert {r.microdesc_digest for r in view.relays} == served
    assert report.signatures == "3/3"
    assert (report.consensus_relays, report.relays, report.microdescs) == (20, 20, 20)
    assert report.discarded_microdescs == 0 and report.certificates_fetched == 3
    exits = [r for r in view.relays if r.has(Flag.EXIT) and not r.has(Flag.BAD_EXIT)]
    assert report.exits == len(exits)
    assert [step for step, _ in report.timings] == [
        "consensus",
        "certificates",
        "verify",
        "microdescs",
    ]
    assert responder.paths[0] == CONSENSUS_PATH
    assert len(paths_of(responder, "/tor/keys/fp-sk/")) == 1
    assert len(paths_of(responder, "/tor/micro/d/")) == 1
    assert report.requests == len(responder.paths) == 3


def test_certificates_already_held_are_not_fetched_again(tmp_path: Path) -> None:
    net = network()
    first = fetch(tmp_path, DirResponder(net))
    responder = DirResponder(net)

    async def main() -> None:
        async with with_relay(tmp_path, responder.script) as connect:
            async with await connect() as channel:
                again = await fetch_network_view(
                    channel,
                    authorities(net),
                    now=lambda: net.valid_after + 60,
                    certificates=first.certificates,
                    timeout_s=10,
                )
                assert again.report.certificates_fetched == 0

    run(main())
    assert not paths_of(responder, "/tor/keys/")


def test_wrong_v3idents_are_refused_naming_the_authority(tmp_path: Path) -> None:
    net = network()
    real = authorities(net)
    wrong = tuple(
        dataclasses.replace(a, v3ident=bytes(19) + bytes([i])) for i, a in enumerate(real)
    )
    responder = DirResponder(net)
    with pytest.raises(ConsensusSignatureError) as caught:
        fetch(tmp_path, responder, wrong)
    assert "0 of 3" in str(caught.value)
    assert (bytes(19) + b"\x01").hex().upper() in str(caught.value)
    assert responder.paths == [CONSENSUS_PATH]  # no certificates asked for, no microdescs


def test_an_expired_certificate_is_refused_naming_the_authority(tmp_path: Path) -> None:
    net = network()
    victim = net.authorities[1]
    expired = make_key_certificate(
        victim.keys, published=net.valid_after - 86400 * 10, expires=net.valid_after - 60
    )
    responder = DirResponder(net, certificates={victim.v3ident: expired})
    with pytest.raises(KeyCertificateError, match=rf"authority {victim.nickname} .*expired"):
        fetch(tmp_path, responder)
    assert not paths_of(responder, "/tor/micro/")


def test_a_microdesc_with_a_wrong_digest_is_discarded(tmp_path: Path) -> None:
    net = network()
    victim = net.relays[4]
    forged = victim.microdesc.replace(b"ntor-onion-key ", b"ntor-onion-key  ")
    responder = DirResponder(net, microdescs={victim.microdesc_digest: forged})
    report = fetch(tmp_path, responder).report
    assert (report.relays, report.microdescs, report.discarded_microdescs) == (19, 19, 1)


def test_a_decompression_bomb_stops_at_the_bound(tmp_path: Path) -> None:
    net = network()
    bomb = zlib.compress(bytes(16 * MAX_DIR_RESPONSE_BYTES))
    responder = DirResponder(net, bodies={CONSENSUS_PATH: (bomb, "deflate")})
    with pytest.raises(DirectoryError, match="exceeds"):
        fetch(tmp_path, responder)
    assert responder.paths == [CONSENSUS_PATH]


def test_microdescs_are_asked_for_in_batches_of_tors_tunnelled_limit() -> None:
    digests = [i.to_bytes(2, "big") + bytes(30) for i in range(1200)]
    paths = microdesc_paths(digests)
    sizes = [len(p.removeprefix("/tor/micro/d/").split("-")) for p in paths]
    assert sizes == [MICRODESCS_PER_REQUEST, MICRODESCS_PER_REQUEST, 200] == [500, 500, 200]
    first = paths[0].removeprefix("/tor/micro/d/").split("-")[0]
    assert len(first) == 43 and "=" not in first
    assert [d for p in paths for d in p.removeprefix("/tor/micro/d/").split("-")] == [
        base64.b64encode(d).decode().rstrip("=") for d in digests
    ]


def test_a_silent_bridge_ends_at_the_deadline(tmp_path: Path) -> None:
    net = network()
    responder = DirResponder(net, stall={CONSENSUS_PATH})
    started = time.monotonic()
    with pytest.raises(HandshakeTimeout):
        fetch(tmp_path, responder, timeout_s=0.5)
    assert time.monotonic() - started < 5


def test_a_refused_request_names_the_step_and_stops(tmp_path: Path) -> None:
    net = network()
    responder = DirResponder(net, refuse={"/tor/keys/": "404 Not found"})
    with pytest.raises(DirectoryError, match="key certificates: the bridge answered HTTP 404"):
        fetch(tmp_path, responder)
    assert not paths_of(responder, "/tor/micro/")


def test_an_expired_held_certificate_is_fetched_again(tmp_path: Path) -> None:
    net = network()
    held = fetch(tmp_path, DirResponder(net)).certificates
    stale = [dataclasses.replace(cert, expires=net.valid_after - 1) for cert in held]
    responder = DirResponder(net)

    async def main() -> None:
        async with with_relay(tmp_path, responder.script) as connect:
            async with await connect() as channel:
                result = await fetch_network_view(
                    channel,
                    authorities(net),
                    now=lambda: net.valid_after + 60,
                    certificates=stale,
                    timeout_s=10,
                )
                assert result.report.certificates_fetched == 3

    run(main())
    assert len(paths_of(responder, "/tor/keys/fp-sk/")) == 1


@pytest.mark.parametrize("status", ["404 Not found", "503 Directory busy"])
def test_a_microdesc_batch_not_found_leaves_those_missing(
    tmp_path: Path, status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As tor: a batch the bridge lacks (or is too busy for) is counted missing; the view is
    built from the other batches, the relays lacking one are unusable."""
    monkeypatch.setattr(dirmgr, "MICRODESCS_PER_REQUEST", 8)
    net = network()
    digests = sorted(hashlib.sha256(r.microdesc).digest() for r in net.relays)
    refused = microdesc_paths(digests, 8)[1]
    responder = DirResponder(net, refuse={refused: status})
    result = fetch(tmp_path, responder)
    view, report = result.view, result.report
    assert len(paths_of(responder, "/tor/micro/d/")) == 3  # 8 + 8 + 4, the second refused
    assert {r.microdesc_digest for r in view.relays} == set(digests[:8] + digests[16:])
    assert {status.microdesc_digest for status in view.lacking_microdesc} == set(digests[8:16])
    assert (report.relays, report.microdescs, report.microdescs_missing) == (12, 12, 8)
    assert report.consensus_relays == 20


def test_other_refusals_of_a_microdesc_batch_stay_errors(tmp_path: Path) -> None:
    net = network()
    responder = DirResponder(net, refuse={"/tor/micro/d/": "500 Internal error"})
    with pytest.raises(DirectoryError, match="microdescriptors: the bridge answered HTTP 500"):
        fetch(tmp_path, responder)
