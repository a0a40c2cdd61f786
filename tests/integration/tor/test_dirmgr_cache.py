"""tor.dirmgr with a DirectoryCache, over real loopback TLS (tests/support/dir_responder.py): what
a second start fetches with a FRESH or LIVE cache (counted at the responder), tampered cache
files refetched, a consensus that fails verification never written, the refetch once
fresh-until passes (an injected clock), and a network of thousands of relays end to end through
the responder's SENDME windows."""

from __future__ import annotations

import dataclasses
import functools
import threading
from pathlib import Path

import pytest

from tests.support.dir_responder import CONSENSUS_PATH, DirResponder
from tests.support.fake_network import FakeNetwork, make_network, next_network
from tests.support.scripted_relay import run, with_relay
from webtunnel_pt.errors import DIRECTORY_REQUESTS_ATTRIBUTE, ConsensusSignatureError
from webtunnel_pt.tor import dirmgr
from webtunnel_pt.tor.authorities import DirAuthority, parse_dir_authorities
from webtunnel_pt.tor.cells import MAX_RELAY_DATA
from webtunnel_pt.tor.dircache import (
    CERTIFICATES_FILE,
    CONSENSUS_FILE,
    MICRODESCS_FILE,
    DirectoryCache,
    split_microdesc_bytes,
)
from webtunnel_pt.tor.dirmgr import fetch_network_view
from webtunnel_pt.tor.dirreport import ConsensusSource, DirectoryResult

RELAYS = 20
MICRO = "/tor/micro/d/"
KEYS = "/tor/keys/fp-sk/"


@functools.cache
def network() -> FakeNetwork:
    return make_network(RELAYS, seed=3)


@functools.cache
def successor() -> FakeNetwork:
    """The next period's consensus: the same relays, so the same microdescriptors."""
    return next_network(network())


def authorities(net: FakeNetwork) -> tuple[DirAuthority, ...]:
    return parse_dir_authorities(net.dir_authority_lines)


def fetch(
    tmp_path: Path,
    responder: DirResponder,
    state: Path | None,
    at: float,
    auths: tuple[DirAuthority, ...] | None = None,
) -> DirectoryResult:
    """One start: a channel to the responder, one fetch with the cache in ``state``."""
    result: list[DirectoryResult] = []
    cache = DirectoryCache(state) if state is not None else None

    async def main() -> None:
        async with with_relay(tmp_path, responder.script) as connect:
            async with await connect() as channel:
                result.append(
                    await fetch_network_view(
                        channel,
                        authorities(responder.net) if auths is None else auths,
                        now=lambda: at,
                        cache=cache,
                        timeout_s=20,
                    )
                )

    run(main())
    return result[0]


def paths_of(responder: DirResponder, prefix: str) -> list[str]:
    return [p for p in responder.paths if p.startswith(prefix)]


def asked_digests(responder: DirResponder) -> list[str]:
    return [d for p in paths_of(responder, MICRO) for d in p.removeprefix(MICRO).split("-")]


def cold_start(tmp_path: Path, state: Path, net: FakeNetwork | None = None) -> DirectoryResult:
    net = net or network()
    result = fetch(tmp_path, DirResponder(net), state, net.valid_after + 60)
    assert result.report.consensus_source is ConsensusSource.NETWORK
    return result


def test_a_cold_start_fills_the_cache(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    report = cold_start(tmp_path, state).report
    assert report.requests == 3
    assert (report.microdescs_fetched, report.microdescs_cached) == (RELAYS, 0)
    assert (report.certificates_fetched, report.certificates_cached) == (3, 0)
    assert report.cache_problems == () and report.refetch_error is None
    assert [step for step, _ in report.timings] == [
        "cache",
        "consensus",
        "certificates",
        "verify",
        "microdescs",
    ]
    assert (state / CONSENSUS_FILE).read_bytes() == net.consensus
    assert {r.microdesc for r in net.relays} <= set(split(state / MICRODESCS_FILE, len(net.relays)))
    assert (state / CERTIFICATES_FILE).stat().st_size > 0


def split(path: Path, count: int) -> list[bytes]:
    """The microdescriptors of a cache file; exactly ``count`` of them, none twice."""
    entries = split_microdesc_bytes(path.read_bytes())
    assert len(entries) == count and len(path.read_bytes()) == sum(map(len, entries.values()))
    return list(entries.values())


def test_a_fresh_cache_fetches_nothing_and_opens_no_circuit(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    first = cold_start(tmp_path, state)
    responder = DirResponder(net)
    again = fetch(tmp_path, responder, state, net.fresh_until - 1)
    assert responder.paths == [] and responder.circuits == 0
    report = again.report
    assert report.requests == 0 and report.consensus_source is ConsensusSource.CACHE
    assert (report.microdescs_fetched, report.microdescs_cached) == (0, RELAYS)
    assert (report.certificates_fetched, report.certificates_cached) == (0, 3)
    assert report.signatures == "3/3" and report.relays == RELAYS
    assert [r.rsa_identity for r in again.view.relays] == [
        r.rsa_identity for r in first.view.relays
    ]
    assert len(again.certificates) == 3


def test_a_live_cache_fetches_only_the_consensus(tmp_path: Path) -> None:
    net, later = network(), successor()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    responder = DirResponder(later)
    result = fetch(tmp_path, responder, state, net.fresh_until + 60)
    assert responder.paths == [CONSENSUS_PATH]
    report = result.report
    assert report.consensus_source is ConsensusSource.NETWORK and report.requests == 1
    assert (report.microdescs_fetched, report.microdescs_cached) == (0, RELAYS)
    assert report.certificates_fetched == 0 and report.certificates_cached == 3
    assert result.view.valid_after == later.valid_after
    assert (state / CONSENSUS_FILE).read_bytes() == later.consensus


def test_a_live_cache_fetches_only_new_microdescs(tmp_path: Path) -> None:
    net = network()
    newcomers = make_network(5, seed=4).relays
    later = next_network(net, relays=[*net.relays[:15], *newcomers])
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    responder = DirResponder(later)
    report = fetch(tmp_path, responder, state, net.fresh_until + 60).report
    assert responder.paths[0] == CONSENSUS_PATH and not paths_of(responder, KEYS)
    assert sorted(asked_digests(responder)) == sorted(r.microdesc_digest for r in newcomers)
    assert (report.microdescs_fetched, report.microdescs_cached) == (5, 15)
    assert report.relays == RELAYS and report.requests == 2
    # The cache now holds exactly what the new consensus lists; the 5 dropped relays are gone.
    assert set(split(state / MICRODESCS_FILE, RELAYS)) == {r.microdesc for r in later.relays}


def test_the_consensus_is_refetched_once_fresh_until_passes(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    before = DirResponder(successor())
    fetch(tmp_path, before, state, net.fresh_until - 1)
    assert before.paths == []
    at = DirResponder(successor())
    report = fetch(tmp_path, at, state, net.fresh_until).report
    assert at.paths == [CONSENSUS_PATH] and report.consensus_source is ConsensusSource.NETWORK
    # The new one is fresh until its own fresh-until: the next start fetches nothing again.
    after = DirResponder(successor())
    fetch(tmp_path, after, state, successor().fresh_until - 1)
    assert after.paths == []


def _tamper(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new, 1))


def test_a_tampered_cached_consensus_is_refused_and_refetched(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    relay = net.relays[2]
    _tamper(
        state / CONSENSUS_FILE,
        f"r {relay.nickname} ".encode(),
        b"r " + b"x" * len(relay.nickname) + b" ",
    )
    responder = DirResponder(net)
    report = fetch(tmp_path, responder, state, net.valid_after + 120).report
    assert responder.paths == [CONSENSUS_PATH]  # certificates and microdescs still cached
    assert report.consensus_source is ConsensusSource.NETWORK
    assert any(p.startswith(CONSENSUS_FILE) and "signed" in p for p in report.cache_problems)
    assert (state / CONSENSUS_FILE).read_bytes() == net.consensus


def test_a_tampered_cached_microdesc_is_refused_and_refetched(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    victim = net.relays[7]
    at = victim.microdesc.index(b"ntor-onion-key ") + len(b"ntor-onion-key ")
    other = b"B" if victim.microdesc[at : at + 1] == b"A" else b"A"
    tampered = victim.microdesc[:at] + other + victim.microdesc[at + 1 :]
    _tamper(state / MICRODESCS_FILE, victim.microdesc, tampered)
    responder = DirResponder(net)
    result = fetch(tmp_path, responder, state, net.valid_after + 120)
    assert asked_digests(responder) == [victim.microdesc_digest]
    assert paths_of(responder, MICRO) == responder.paths  # no consensus, no certificates
    report = result.report
    assert (report.microdescs_fetched, report.microdescs_cached) == (1, RELAYS - 1)
    assert report.relays == RELAYS
    assert any(p.startswith(MICRODESCS_FILE) for p in report.cache_problems)
    assert victim.microdesc in split(state / MICRODESCS_FILE, RELAYS)


def _forged(net: FakeNetwork) -> bytes:
    """``net``'s consensus with one byte changed after signing: no signature holds."""
    relay = net.relays[0]
    old = f"r {relay.nickname} ".encode()
    return net.consensus.replace(old, b"r " + b"y" * len(relay.nickname) + b" ", 1)


def test_a_consensus_failing_verification_is_never_cached(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    responder = DirResponder(net, bodies={CONSENSUS_PATH: (_forged(net), "identity")})
    with pytest.raises(ConsensusSignatureError):
        fetch(tmp_path, responder, state, net.valid_after + 60)
    assert not (state / CONSENSUS_FILE).exists()
    assert not paths_of(responder, MICRO)


def test_a_live_cached_consensus_outlives_a_forged_refetch(tmp_path: Path) -> None:
    """Past fresh-until the bridge serves a consensus that fails verification: it is neither
    used nor stored; the still-live cached one is used and the report says why."""
    net, later = network(), successor()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    responder = DirResponder(later, bodies={CONSENSUS_PATH: (_forged(later), "identity")})
    result = fetch(tmp_path, responder, state, net.valid_until + 3600)
    report = result.report
    assert report.consensus_source is ConsensusSource.CACHE
    assert report.refetch_error is not None and "signed validly by 0 of 3" in report.refetch_error
    assert result.view.valid_after == net.valid_after
    assert (state / CONSENSUS_FILE).read_bytes() == net.consensus
    assert responder.paths == [CONSENSUS_PATH]


def test_a_refused_refetch_falls_back_to_the_live_cache(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    responder = DirResponder(net, refuse={CONSENSUS_PATH: "503 Busy"})
    report = fetch(tmp_path, responder, state, net.fresh_until + 60).report
    assert report.consensus_source is ConsensusSource.CACHE
    assert report.refetch_error == "consensus: the bridge answered HTTP 503 Busy"
    assert report.relays == RELAYS


def test_an_older_consensus_from_the_bridge_is_not_taken(tmp_path: Path) -> None:
    net, later = network(), successor()
    state = tmp_path / "state"
    cold_start(tmp_path, state, later)  # the cache holds the newer one
    responder = DirResponder(net)
    report = fetch(tmp_path, responder, state, later.fresh_until + 60).report
    assert report.consensus_source is ConsensusSource.CACHE
    assert report.refetch_error is not None and "not newer" in report.refetch_error
    assert (state / CONSENSUS_FILE).read_bytes() == later.consensus


def test_without_a_live_cache_a_failed_fetch_is_an_error(tmp_path: Path) -> None:
    """A cached consensus more than 24 h past valid-until is not a fallback."""
    net = network()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    responder = DirResponder(net, bodies={CONSENSUS_PATH: (_forged(net), "identity")})
    with pytest.raises(ConsensusSignatureError):
        fetch(tmp_path, responder, state, net.valid_until + 25 * 3600)
    assert not (state / CONSENSUS_FILE).exists()


def test_wrong_v3idents_trust_no_cached_consensus(tmp_path: Path) -> None:
    net = network()
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    wrong = tuple(
        dataclasses.replace(a, v3ident=bytes(19) + bytes([i]))
        for i, a in enumerate(authorities(net))
    )
    responder = DirResponder(net)
    with pytest.raises(ConsensusSignatureError, match="0 of 3") as failed:
        fetch(tmp_path, responder, state, net.valid_after + 60, wrong)
    assert responder.paths == [CONSENSUS_PATH]
    # The failure says how many requests it made: the one the responder saw.
    assert getattr(failed.value, DIRECTORY_REQUESTS_ATTRIBUTE) == len(responder.paths)


def test_parsing_and_verifying_run_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, str] = {}
    for name in ("parse_consensus", "verify_consensus", "parse_microdescs"):
        real = getattr(dirmgr, name)

        def spy(*args: object, _real: object = real, _name: str = name) -> object:
            threads[_name] = threading.current_thread().name
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(dirmgr, name, spy)
    fetch(tmp_path, DirResponder(network()), None, network().valid_after + 60)
    main = threading.main_thread().name
    assert len(threads) == 3 and main not in threads.values(), threads


@functools.cache
def big_network() -> FakeNetwork:
    return make_network(2500, seed=5)


def test_thousands_of_relays_flow_through_the_sendme_windows(tmp_path: Path) -> None:
    """A 2,500-relay network: a consensus of ~1,800 cells (more than the 1,000-cell circuit
    window and the 500-cell stream window) and 5 microdescriptor batches, served only as the
    client's SENDMEs open the windows; then a second start fetches nothing."""
    net = big_network()
    assert len(net.consensus) > 1500 * MAX_RELAY_DATA
    state = tmp_path / "state"
    responder = DirResponder(net)
    report = fetch(tmp_path, responder, state, net.valid_after + 60).report
    assert report.relays == report.consensus_relays == 2500
    assert report.microdescs_fetched == 2500 and report.discarded_microdescs == 0
    assert len(paths_of(responder, MICRO)) == 5
    # The answers outgrew the windows and went on only as the client's SENDMEs came back:
    # circuit SENDMEs every 100 cells, stream SENDMEs every 50.
    assert responder.window_waits > 0
    cells = len(net.consensus) // MAX_RELAY_DATA
    assert responder.sendmes >= cells // 100 + cells // 50
    again = DirResponder(net)
    assert fetch(tmp_path, again, state, net.valid_after + 120).report.requests == 0
    assert again.paths == []


def test_a_cache_the_disk_refuses_is_reported_not_fatal(tmp_path: Path) -> None:
    """The state directory's path is a plain file: nothing can be read or stored, and the
    directory is still fetched and verified."""
    net = network()
    state = tmp_path / "not-a-directory"
    state.write_bytes(b"")
    report = fetch(tmp_path, DirResponder(net), state, net.valid_after + 60).report
    assert report.relays == RELAYS and report.consensus_source is ConsensusSource.NETWORK
    stored = {p.split(":")[0] for p in report.cache_problems if "not stored" in p}
    assert stored == {"certificates", "consensus", "microdescriptors"}
    assert state.read_bytes() == b""


def test_microdescs_the_bridge_lacks_are_asked_for_again_next_time(tmp_path: Path) -> None:
    """The bridge answers 404 for new microdescriptors (it has not got them yet): the fetch
    goes on without them, and the next one, with the same FRESH consensus from the cache,
    asks for exactly those."""
    net = network()
    newcomers = make_network(5, seed=4).relays
    later = next_network(net, relays=[*net.relays[:15], *newcomers])
    state = tmp_path / "state"
    cold_start(tmp_path, state)
    refusing = DirResponder(later, refuse={MICRO: "404 Not found"})
    report = fetch(tmp_path, refusing, state, net.fresh_until + 60).report
    assert report.consensus_source is ConsensusSource.NETWORK
    assert (report.relays, report.microdescs_missing, report.microdescs_cached) == (15, 5, 15)
    responder = DirResponder(later)
    report = fetch(tmp_path, responder, state, net.fresh_until + 120).report
    assert report.consensus_source is ConsensusSource.CACHE
    assert sorted(asked_digests(responder)) == sorted(r.microdesc_digest for r in newcomers)
    assert (report.relays, report.microdescs_missing, report.microdescs_fetched) == (RELAYS, 0, 5)
