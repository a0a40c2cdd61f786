"""tor.dircache on a real filesystem (tmp_path): a synthetic signed network's documents stored and
read back, file modes, atomic replacement, and every way a cache file can be bad (tampered,
truncated, oversized, a link, expired), each refused, deleted and reported, never trusted."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from tests.support.fake_network import FakeNetwork, make_network
from webtunnel_pt.tor import dircache
from webtunnel_pt.tor.consensus import parse_consensus
from webtunnel_pt.tor.consensus_verify import REASONABLY_LIVE_S
from webtunnel_pt.tor.dircache import (
    CERTIFICATES_FILE,
    CONSENSUS_FILE,
    MICRODESCS_FILE,
    DirectoryCache,
    Freshness,
    cache_freshness,
    default_state_dir,
    fresh_enough,
    split_microdesc_bytes,
)
from webtunnel_pt.tor.keycert import KeyCertificate, parse_key_certificates

RELAYS = 12
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and links")


@pytest.fixture(scope="module")
def net() -> FakeNetwork:
    return make_network(RELAYS, seed=3)


def ids(net: FakeNetwork) -> list[bytes]:
    return [bytes.fromhex(a.v3ident) for a in net.authorities]


def certs(net: FakeNetwork) -> list[KeyCertificate]:
    return parse_key_certificates(net.certificates)


def now(net: FakeNetwork) -> float:
    return net.valid_after + 600


def filled(path: Path, net: FakeNetwork) -> DirectoryCache:
    cache = DirectoryCache(path)
    cache.store_certificates(certs(net), now(net))
    cache.store_consensus(net.consensus)
    cache.store_microdescs([net.microdescs], parse_consensus(net.consensus))
    return cache


def test_round_trip(tmp_path: Path, net: FakeNetwork) -> None:
    filled(tmp_path / "state", net)
    cache = DirectoryCache(tmp_path / "state")  # a second start
    loaded = cache.load_certificates(ids(net), now(net))
    assert sorted(c.raw for c in loaded) == sorted(c.raw for c in certs(net))
    verified = cache.load_consensus(ids(net), loaded, now(net))
    assert verified is not None
    assert verified.signed_by == frozenset(ids(net))
    batch = cache.load_microdescs(verified.consensus)
    assert len(batch.microdescs) == RELAYS and batch.discarded == 0
    assert {md.digest for md in batch.microdescs} == {
        r.microdesc_digest for r in verified.consensus.routers
    }
    assert (tmp_path / "state" / CONSENSUS_FILE).read_bytes() == net.consensus
    assert cache.misses == []


def test_microdescs_merge_across_batches(tmp_path: Path, net: FakeNetwork) -> None:
    consensus = parse_consensus(net.consensus)
    cache = DirectoryCache(tmp_path)
    half = RELAYS // 2
    cache.store_microdescs([r.microdesc for r in net.relays[:half]], consensus)
    assert len(cache.load_microdescs(consensus).microdescs) == half
    cache.store_microdescs([b"".join(r.microdesc for r in net.relays[half - 1 :])], consensus)
    batch = cache.load_microdescs(consensus)
    assert len(batch.microdescs) == RELAYS and batch.discarded == 0


@posix_only
def test_modes(tmp_path: Path, net: FakeNetwork) -> None:
    old = os.umask(0o022)
    try:
        filled(tmp_path / "a" / "state", net)
    finally:
        os.umask(old)
    state = tmp_path / "a" / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in (CONSENSUS_FILE, CERTIFICATES_FILE, MICRODESCS_FILE):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in state.iterdir()) == sorted(
        [CONSENSUS_FILE, CERTIFICATES_FILE, MICRODESCS_FILE]
    )


def test_failed_replace_keeps_the_old_file(
    tmp_path: Path, net: FakeNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DirectoryCache(tmp_path)
    cache.store_consensus(b"old consensus\n")

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        cache.store_consensus(net.consensus)
    assert (tmp_path / CONSENSUS_FILE).read_bytes() == b"old consensus\n"
    assert [p.name for p in tmp_path.iterdir()] == [CONSENSUS_FILE]  # no temp file left


def test_failed_write_leaves_no_temp_file(
    tmp_path: Path, net: FakeNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DirectoryCache(tmp_path)
    cache.store_consensus(b"old consensus\n")

    def crash(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        cache.store_consensus(net.consensus)
    assert [p.name for p in tmp_path.iterdir()] == [CONSENSUS_FILE]
    assert (tmp_path / CONSENSUS_FILE).read_bytes() == b"old consensus\n"


def test_a_crash_s_temp_file_is_removed_once_stale(tmp_path: Path) -> None:
    stale = tmp_path / f".{CONSENSUS_FILE}.0123456789abcdef.tmp"
    recent = tmp_path / f".{CONSENSUS_FILE}.fedcba9876543210.tmp"
    other = tmp_path / f".{CERTIFICATES_FILE}.0123456789abcdef.tmp"
    for path in (stale, recent, other):
        path.write_bytes(b"half a consens")
    old = time.time() - dircache.STALE_TEMP_S - 10
    for path in (stale, other):
        os.utime(path, (old, old))
    DirectoryCache(tmp_path).store_consensus(b"new\n")
    assert not stale.exists()
    assert recent.exists()  # perhaps another process's write in progress
    assert other.exists()  # another file's; its own next write removes it


def _edit(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) >= 1, old
    path.write_bytes(data.replace(old, new, 1))


def test_tampered_consensus_is_refused_and_deleted(tmp_path: Path, net: FakeNetwork) -> None:
    filled(tmp_path, net)
    relay = net.relays[0]
    # Same length, other bytes: only the signature check can tell.
    _edit(
        tmp_path / CONSENSUS_FILE,
        f"r {relay.nickname} ".encode(),
        b"r " + b"x" * len(relay.nickname) + b" ",
    )
    cache = DirectoryCache(tmp_path)
    assert cache.load_consensus(ids(net), certs(net), now(net)) is None
    assert not (tmp_path / CONSENSUS_FILE).exists()
    assert [m.name for m in cache.misses] == [CONSENSUS_FILE]
    assert "signed validly by 0 of 3" in cache.misses[0].reason


def test_tampered_certificate_is_refused_and_deleted(tmp_path: Path, net: FakeNetwork) -> None:
    filled(tmp_path, net)
    _edit(tmp_path / CERTIFICATES_FILE, b"dir-key-expires 2", b"dir-key-expires 3")
    cache = DirectoryCache(tmp_path)
    assert cache.load_certificates(ids(net), now(net)) == []
    assert not (tmp_path / CERTIFICATES_FILE).exists()
    assert [m.name for m in cache.misses] == [CERTIFICATES_FILE]
    # Without its certificates the consensus cannot be verified either: never trusted.
    assert cache.load_consensus(ids(net), [], now(net)) is None


def test_tampered_microdesc_is_dropped(tmp_path: Path, net: FakeNetwork) -> None:
    filled(tmp_path, net)
    victim = net.relays[4].microdesc
    at = victim.index(b"ntor-onion-key ") + len(b"ntor-onion-key ")
    # Another valid key, same length: the microdescriptor still parses, its digest differs.
    other = b"B" if victim[at : at + 1] == b"A" else b"A"
    tampered = victim[:at] + other + victim[at + 1 :]
    _edit(tmp_path / MICRODESCS_FILE, victim, tampered)
    consensus = parse_consensus(net.consensus)
    cache = DirectoryCache(tmp_path)
    batch = cache.load_microdescs(consensus)
    assert len(batch.microdescs) == RELAYS - 1 and batch.discarded == 1
    assert [m.name for m in cache.misses] == [MICRODESCS_FILE]
    # The bad entry is gone from the file: the next load finds only good ones.
    assert tampered not in (tmp_path / MICRODESCS_FILE).read_bytes()
    again = DirectoryCache(tmp_path).load_microdescs(consensus)
    assert len(again.microdescs) == RELAYS - 1 and again.discarded == 0


@pytest.mark.parametrize("name", [CONSENSUS_FILE, CERTIFICATES_FILE, MICRODESCS_FILE])
def test_truncated_file(tmp_path: Path, net: FakeNetwork, name: str) -> None:
    filled(tmp_path, net)
    path = tmp_path / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 7])
    cache = DirectoryCache(tmp_path)
    loaded = cache.load_certificates(ids(net), now(net))
    verified = cache.load_consensus(ids(net), loaded, now(net))
    batch = cache.load_microdescs(parse_consensus(net.consensus))
    if name == MICRODESCS_FILE:
        assert verified is not None
        assert len(batch.microdescs) < RELAYS  # the cut entry (and those after it) dropped
        assert all(
            md.digest in {r.microdesc_digest for r in verified.consensus.routers}
            for md in batch.microdescs
        )
    else:
        assert verified is None  # no consensus, or none verifiable without certificates
        assert not path.exists()
    assert name in {m.name for m in cache.misses}


def test_oversized_file_is_refused_unread(tmp_path: Path, net: FakeNetwork) -> None:
    path = tmp_path / CERTIFICATES_FILE
    path.write_bytes(b"x" * (dircache.MAX_FILE_BYTES[CERTIFICATES_FILE] + 1))
    cache = DirectoryCache(tmp_path)
    assert cache.load_certificates(ids(net), now(net)) == []
    assert not path.exists()
    assert "larger than" in cache.misses[0].reason


def test_garbage_microdescs_file(tmp_path: Path, net: FakeNetwork) -> None:
    (tmp_path / MICRODESCS_FILE).write_bytes(b"\x00\xffnot a document")
    cache = DirectoryCache(tmp_path)
    batch = cache.load_microdescs(parse_consensus(net.consensus))
    assert batch.microdescs == () and not (tmp_path / MICRODESCS_FILE).exists()
    assert cache.misses[0].name == MICRODESCS_FILE


@posix_only
def test_symlink_is_not_followed(tmp_path: Path, net: FakeNetwork) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(net.consensus)
    state = tmp_path / "state"
    state.mkdir()
    (state / CONSENSUS_FILE).symlink_to(elsewhere)
    cache = DirectoryCache(state)
    assert cache.load_consensus(ids(net), certs(net), now(net)) is None
    assert elsewhere.exists()  # the target is not touched
    assert not (state / CONSENSUS_FILE).is_symlink()


@posix_only
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, net: FakeNetwork) -> None:
    os.mkfifo(tmp_path / CONSENSUS_FILE)
    cache = DirectoryCache(tmp_path)
    assert cache.load_consensus(ids(net), certs(net), now(net)) is None
    assert not (tmp_path / CONSENSUS_FILE).exists()
    assert "not a regular file" in cache.misses[0].reason


def test_missing_files_are_plain_misses(tmp_path: Path, net: FakeNetwork) -> None:
    cache = DirectoryCache(tmp_path / "never-created")
    assert cache.load_certificates(ids(net), now(net)) == []
    assert cache.load_consensus(ids(net), certs(net), now(net)) is None
    assert cache.load_microdescs(parse_consensus(net.consensus)).microdescs == ()
    assert cache.misses == []  # absent is not refused
    assert not (tmp_path / "never-created").exists()  # loading creates nothing


# ---- pruning (injected clock) ----------------------------------------------------------------


def test_expired_certificates_are_pruned(tmp_path: Path, net: FakeNetwork) -> None:
    filled(tmp_path, net)
    expires = max(c.expires for c in certs(net))
    cache = DirectoryCache(tmp_path)
    assert len(cache.load_certificates(ids(net), expires)) == len(net.authorities)
    assert cache.load_certificates(ids(net), expires + 1) == []
    assert (tmp_path / CERTIFICATES_FILE).read_bytes() == b""
    # Storing at a time past their expiry keeps none either.
    cache.store_certificates(certs(net), expires + 1)
    assert (tmp_path / CERTIFICATES_FILE).read_bytes() == b""


def test_certificates_of_other_authorities_are_not_returned(
    tmp_path: Path, net: FakeNetwork
) -> None:
    filled(tmp_path, net)
    cache = DirectoryCache(tmp_path)
    assert len(cache.load_certificates(ids(net)[:1], now(net))) == 1


def test_stale_consensus_is_pruned(tmp_path: Path, net: FakeNetwork) -> None:
    filled(tmp_path, net)
    cache = DirectoryCache(tmp_path)
    last = net.valid_until + REASONABLY_LIVE_S
    assert cache.load_consensus(ids(net), certs(net), last) is not None
    assert cache.load_consensus(ids(net), certs(net), last + 1) is None
    assert not (tmp_path / CONSENSUS_FILE).exists()
    assert "expired" in cache.misses[0].reason


def test_unlisted_microdescs_are_pruned(tmp_path: Path, net: FakeNetwork) -> None:
    filled(tmp_path, net)
    other = parse_consensus(make_network(RELAYS, seed=4).consensus)
    cache = DirectoryCache(tmp_path)
    batch = cache.load_microdescs(other)
    assert batch.microdescs == () and batch.discarded == RELAYS
    assert (tmp_path / MICRODESCS_FILE).read_bytes() == b""
    # A store under a consensus keeps only what that consensus lists.
    cache.store_microdescs([net.microdescs], other)
    assert (tmp_path / MICRODESCS_FILE).read_bytes() == b""


def test_split_microdesc_bytes(net: FakeNetwork) -> None:
    entries = split_microdesc_bytes(net.microdescs + net.relays[0].microdesc)
    assert list(entries.values()) == [r.microdesc for r in net.relays]


# ---- what a second start needs ---------------------------------------------------------------


def test_freshness(net: FakeNetwork) -> None:
    c = parse_consensus(net.consensus)
    assert cache_freshness(c, net.valid_after) is Freshness.FRESH
    assert fresh_enough(c, net.fresh_until - 1)
    assert cache_freshness(c, net.fresh_until) is Freshness.LIVE
    assert not fresh_enough(c, net.fresh_until)
    assert cache_freshness(c, net.valid_until + REASONABLY_LIVE_S) is Freshness.LIVE
    assert cache_freshness(c, net.valid_until + REASONABLY_LIVE_S + 1) is Freshness.UNUSABLE
    assert cache_freshness(c, net.valid_after - 2 * 3600) is Freshness.UNUSABLE


def test_second_start_with_a_live_cache(tmp_path: Path, net: FakeNetwork) -> None:
    """Past fresh-until the cache still gives certificates and microdescriptors; only a new
    consensus is to be fetched."""
    filled(tmp_path, net)
    later = net.fresh_until + 60
    cache = DirectoryCache(tmp_path)
    loaded = cache.load_certificates(ids(net), later)
    verified = cache.load_consensus(ids(net), loaded, later)
    assert verified is not None
    assert cache_freshness(verified.consensus, later) is Freshness.LIVE
    assert len(cache.load_microdescs(verified.consensus).microdescs) == RELAYS
    assert cache.misses == []


# ---- default_state_dir -----------------------------------------------------------------------


def test_default_state_dir_linux() -> None:
    assert default_state_dir({"HOME": "/home/u"}, "linux") == Path("/home/u/.cache/webtunnel-pt")
    assert default_state_dir({"HOME": "/home/u", "XDG_CACHE_HOME": "/var/c"}, "linux") == Path(
        "/var/c/webtunnel-pt"
    )
    # The XDG spec: a relative XDG_CACHE_HOME is ignored.
    assert default_state_dir({"HOME": "/home/u", "XDG_CACHE_HOME": "rel"}, "linux") == Path(
        "/home/u/.cache/webtunnel-pt"
    )


def test_default_state_dir_macos() -> None:
    env = {"HOME": "/Users/u", "XDG_CACHE_HOME": "/ignored"}
    assert default_state_dir(env, "darwin") == Path("/Users/u/Library/Caches/webtunnel-pt")


def test_default_state_dir_windows() -> None:
    env = {"LOCALAPPDATA": r"C:\Users\u\AppData\Local", "USERPROFILE": r"C:\Users\u"}
    assert default_state_dir(env, "win32") == Path(r"C:\Users\u\AppData\Local") / "webtunnel-pt"
    fallback = default_state_dir({"USERPROFILE": r"C:\Users\u"}, "win32")
    assert fallback == Path(r"C:\Users\u") / "AppData" / "Local" / "webtunnel-pt"
