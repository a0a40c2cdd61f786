"""The directory cache in a state directory: what lets a second start skip most fetches
(issue 13), and never a source of trust.

    default_state_dir(environ, platform)      -> Path   where ``--state-dir`` points by default
    cache_freshness(consensus, now)           -> Freshness   FRESH, LIVE or UNUSABLE
    fresh_enough(consensus, now)              -> bool   FRESH: fetch nothing
    DirectoryCache(path)
        .load_certificates(authority_ids, now)            -> [KeyCertificate]
        .store_certificates(certificates, now)
        .load_consensus(authority_ids, certificates, now) -> VerifiedConsensus | None
        .store_consensus(document)
        .load_microdescs(consensus)                       -> MicrodescBatch
        .store_microdescs(responses, consensus)
        .misses                                           -> [CacheMiss]   what was refused

Files, as received (decompressed), in the state directory::

    cached-consensus-microdesc   the microdesc consensus
    cached-certs                 authority key certificates, concatenated as /tor/keys/ serves them
    cached-microdescs            microdescriptors, concatenated as /tor/micro/d/ serves them

Microdescriptors live in one file, as tor keeps them (``cached-microdescs``): the live network's
~8,000 are ~3.5 MiB, read in one bounded read and checked by one :func:`parse_microdescs` call,
and written by one atomic replace; 8,000 files would cost 8,000 opens and inodes, and a
consistent snapshot would need a directory swap. Rewriting the file on each store costs a few
MiB per hour (the consensus interval), which is nothing next to fetching them.

Nothing read back is trusted. Each file is re-parsed and re-verified by the checks a fresh fetch
gets: certificates by their identity-key signature and validity, the consensus by the
configured authorities' signatures and its lifetime, each microdescriptor by its SHA-256 against
the consensus' ``m`` lines. So a corrupt, truncated or tampered file fails verification; it is
deleted (for microdescriptors: the entries that fail are dropped) and recorded in
:attr:`DirectoryCache.misses`, and the caller fetches instead. A file over its size bound (the
same bound as a fetched document), a symbolic link, anything but a regular file, or an
unreadable file is a miss too.

Writes are atomic: a temporary file in the same directory (``O_CREAT | O_EXCL``, mode 0600),
written, ``fsync``-ed, then ``os.replace``-d over the old file, so a crash leaves the old file or
the new one, never half of either; a temporary file a crash left behind is removed by the next
write once it is an hour old. The directory is created with mode 0700.

Pruning, at each load and store:

- certificates past their ``dir-key-expires`` (tor drops them likewise);
- the consensus once it is no longer reasonably live, 24 h past ``valid-until`` (dir-spec §5.1);
- microdescriptors the current consensus no longer lists. tor keeps them 7 days after they were
  last listed (microdesc.c, microdesc_cache_clean), which needs a last-listed time per entry
  and a journal; dropping them at once keeps the file the consensus' size and costs at most a
  refetch of a relay that drops out and comes back (~400 bytes).

File I/O, so not sans-I/O (tests/unit/test_sans_io.py lists it), but it imports no ``asyncio``,
``socket`` or ``ssl``: the caller runs it in a thread when it must not block its loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import sys
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from webtunnel_pt.errors import DirectoryError
from webtunnel_pt.tor.consensus import MAX_CONSENSUS_BYTES, Consensus, parse_consensus
from webtunnel_pt.tor.consensus_verify import (
    ALLOWED_SKEW_S,
    REASONABLY_LIVE_S,
    VerifiedConsensus,
    verify_consensus,
)
from webtunnel_pt.tor.keycert import (
    MAX_KEY_CERTIFICATES_BYTES,
    KeyCertificate,
    parse_key_certificates,
)
from webtunnel_pt.tor.microdesc import (
    MAX_MICRODESC_RESPONSE_BYTES,
    MicrodescBatch,
    parse_microdescs,
    split_microdescs,
)
from webtunnel_pt.tor.netdoc import parse_items

logger = logging.getLogger(__name__)

APP_NAME = "webtunnel-pt"
CONSENSUS_FILE = "cached-consensus-microdesc"
CERTIFICATES_FILE = "cached-certs"
MICRODESCS_FILE = "cached-microdescs"
#: Largest file read back, per file: the bound a fetched document of that kind gets.
MAX_FILE_BYTES = {
    CONSENSUS_FILE: MAX_CONSENSUS_BYTES,
    CERTIFICATES_FILE: MAX_KEY_CERTIFICATES_BYTES,
    MICRODESCS_FILE: MAX_MICRODESC_RESPONSE_BYTES,
}
#: Mode of every cache file: the documents are public, but which ones a client holds is not.
FILE_MODE = 0o600
#: Mode of the state directory when this module creates it.
DIR_MODE = 0o700
_TEMP_SUFFIX = ".tmp"
#: A temporary file this old was left by a crash (a write takes well under a second); younger
#: ones may belong to another process writing the same state directory, and are left alone.
STALE_TEMP_S = 60 * 60


def default_state_dir(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> Path:
    """The user's cache directory under ``webtunnel-pt``: ``%LOCALAPPDATA%`` on Windows,
    ``~/Library/Caches`` on macOS, ``$XDG_CACHE_HOME`` or ``~/.cache`` elsewhere (XDG Base
    Directory spec). ``environ`` and ``platform`` default to this process's."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    home = env.get("HOME") or env.get("USERPROFILE") or str(Path.home())
    if plat == "win32":
        base = env.get("LOCALAPPDATA") or str(Path(home) / "AppData" / "Local")
        return Path(base) / APP_NAME
    if plat == "darwin":
        return Path(home) / "Library" / "Caches" / APP_NAME
    xdg = env.get("XDG_CACHE_HOME", "")
    # The XDG spec: a relative path is invalid and must be ignored.
    base = xdg if xdg and os.path.isabs(xdg) else str(Path(home) / ".cache")
    return Path(base) / APP_NAME


class Freshness(StrEnum):
    """What a cached consensus still needs, at a given time (dir-spec §5.1)."""

    FRESH = "fresh"  # before fresh-until: use it, fetch nothing
    LIVE = "live"  # reasonably live: use it, and fetch a new consensus
    UNUSABLE = "unusable"  # not yet valid, or more than 24 h past valid-until: fetch everything


def cache_freshness(consensus: Consensus, now: float) -> Freshness:
    """Whether a (verified) cached consensus is enough on its own, enough with a new consensus
    fetched alongside, or not usable. Certificates and microdescriptors come from the cache in
    the first two cases; a new consensus then asks only for the microdescriptors it adds."""
    if now < consensus.valid_after - ALLOWED_SKEW_S:
        return Freshness.UNUSABLE
    if now > consensus.valid_until + REASONABLY_LIVE_S:
        return Freshness.UNUSABLE
    if consensus.needs_refetch(now):
        return Freshness.LIVE
    return Freshness.FRESH


def fresh_enough(consensus: Consensus, now: float) -> bool:
    """True when a start with this cached consensus needs to fetch nothing."""
    return cache_freshness(consensus, now) is Freshness.FRESH


@dataclass(frozen=True, slots=True)
class CacheMiss:
    """A cache file (or entries of it) refused and removed, and why."""

    name: str  # the file's name in the state directory
    reason: str


def split_microdesc_bytes(data: bytes) -> dict[bytes, bytes]:
    """SHA-256 digest -> exact bytes of each microdescriptor in a concatenation (first copy
    kept), split where :func:`parse_microdescs` splits. Raises the parser's errors."""
    items = parse_items(data, max_bytes=MAX_MICRODESC_RESPONSE_BYTES)
    groups = split_microdescs(items)
    starts = [group[0].start for group in groups]
    if starts and starts[0] != 0:
        raise DirectoryError("bytes before the first microdescriptor")
    found: dict[bytes, bytes] = {}
    for at, start in enumerate(starts):
        end = starts[at + 1] if at + 1 < len(starts) else len(data)
        text = data[start:end]
        found.setdefault(hashlib.sha256(text).digest(), text)
    return found


class DirectoryCache:
    """The cache files in one state directory (see the module docstring). Loads never raise
    for a bad file (it becomes a miss); stores raise ``OSError`` when the disk refuses."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.misses: list[CacheMiss] = []

    # ---- certificates ---------------------------------------------------------------------

    def load_certificates(
        self, authority_ids: Collection[bytes], now: float
    ) -> list[KeyCertificate]:
        """The cached certificates of configured authorities, not expired at ``now``; each was
        re-verified (identity-key signature, cross-certificate) by parsing. Expired ones are
        pruned from the file; a file that does not parse is deleted."""
        data = self._read(CERTIFICATES_FILE)
        if data is None:
            return []
        try:
            certs = parse_key_certificates(data)
        except DirectoryError as exc:
            self._refuse(CERTIFICATES_FILE, f"does not verify: {exc}")
            return []
        live = [cert for cert in certs if now <= cert.expires]
        if len(live) != len(certs):
            self._prune(CERTIFICATES_FILE, b"".join(cert.raw for cert in live))
        wanted = frozenset(authority_ids)
        return [cert for cert in live if cert.identity_fingerprint in wanted]

    def store_certificates(self, certificates: Iterable[KeyCertificate], now: float) -> None:
        """Add ``certificates`` (already verified by the fetcher) to the cached ones, one per
        (v3ident, signing-key digest), the newest copy winning; expired ones are dropped."""
        data = self._read(CERTIFICATES_FILE)
        merged: dict[tuple[bytes, bytes], KeyCertificate] = {}
        if data is not None:
            try:
                old = parse_key_certificates(data)
            except DirectoryError as exc:
                self._record(CERTIFICATES_FILE, f"does not verify: {exc}")
                old = []
            for cert in old:
                merged[(cert.identity_fingerprint, cert.signing_key_digest)] = cert
        for cert in certificates:
            merged[(cert.identity_fingerprint, cert.signing_key_digest)] = cert
        live = [cert for key, cert in sorted(merged.items()) if now <= cert.expires]
        self._write(CERTIFICATES_FILE, b"".join(cert.raw for cert in live))

    # ---- consensus ------------------------------------------------------------------------

    def load_consensus(
        self,
        authority_ids: Collection[bytes],
        certificates: Iterable[KeyCertificate],
        now: float,
    ) -> VerifiedConsensus | None:
        """The cached consensus, parsed and verified as a fetched one is (signatures of more
        than half of ``authority_ids`` with ``certificates``, liveness at ``now``), or None. A
        consensus that fails, a stale one included, is deleted: it can only be refetched."""
        data = self._read(CONSENSUS_FILE)
        if data is None:
            return None
        try:
            return verify_consensus(parse_consensus(data), authority_ids, certificates, now)
        except DirectoryError as exc:
            self._refuse(CONSENSUS_FILE, f"does not verify: {exc}")
            return None

    def store_consensus(self, document: bytes) -> None:
        """Keep ``document``, a consensus the fetcher verified, as received (decompressed)."""
        self._write(CONSENSUS_FILE, document)

    # ---- microdescriptors -----------------------------------------------------------------

    def load_microdescs(self, consensus: Consensus) -> MicrodescBatch:
        """The cached microdescriptors ``consensus`` lists, each checked against its ``m``
        line. Entries that do not match (tampered, or no longer listed) are dropped from the
        file; a file that cannot be read as microdescriptors is deleted."""
        data = self._read(MICRODESCS_FILE)
        if data is None:
            return MicrodescBatch((), 0)
        wanted = {router.microdesc_digest for router in consensus.routers}
        try:
            batch = parse_microdescs(data, wanted)
            if batch.discarded:
                kept = {md.digest for md in batch.microdescs}
                entries = split_microdesc_bytes(data)
                self._prune(MICRODESCS_FILE, b"".join(t for d, t in entries.items() if d in kept))
                self._record(
                    MICRODESCS_FILE,
                    f"{batch.discarded} entries dropped: not listed, or not matching",
                )
        except DirectoryError as exc:
            self._refuse(MICRODESCS_FILE, f"does not parse: {exc}")
            return MicrodescBatch((), 0)
        return batch

    def store_microdescs(self, responses: Iterable[bytes], consensus: Consensus) -> None:
        """Add the microdescriptors of ``responses`` (/tor/micro/d/ bodies) that ``consensus``
        lists to the cached ones; whatever the consensus no longer lists is dropped. Only
        entries whose digest is listed are kept, so nothing unverified is written.

        Each call rewrites the file, so pass every batch of a fetch round in one call, not one
        call per batch (a cold start fetches ~8,000 in dozens of batches: as many rewrites of a
        growing file otherwise).
        Raises :class:`DirectoryError` when a response cannot be split into microdescriptors.
        """
        wanted = {router.microdesc_digest for router in consensus.routers}
        merged: dict[bytes, bytes] = {}
        data = self._read(MICRODESCS_FILE)
        if data is not None:
            try:
                merged.update(split_microdesc_bytes(data))
            except DirectoryError as exc:
                self._record(MICRODESCS_FILE, f"does not parse: {exc}")
        for response in responses:
            for digest, text in split_microdesc_bytes(response).items():
                merged.setdefault(digest, text)
        kept = [text for digest, text in merged.items() if digest in wanted]
        total = sum(map(len, kept))
        if total > MAX_MICRODESC_RESPONSE_BYTES:
            raise DirectoryError(f"microdescriptors take {total} bytes, over the cache bound")
        self._write(MICRODESCS_FILE, b"".join(kept))

    # ---- files ----------------------------------------------------------------------------

    def _read(self, name: str) -> bytes | None:
        """The file's bytes, or None when absent; a file over its bound, a link or an
        unreadable file is removed and recorded as a miss."""
        limit = MAX_FILE_BYTES[name]
        # O_NONBLOCK: opening a FIFO planted in the directory must not hang the client.
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
        flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path / name, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._refuse(name, f"cannot be opened: {exc.strerror or exc}")
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            self._refuse(name, "is not a regular file")
            return None
        try:
            with os.fdopen(fd, "rb") as file:
                data = file.read(limit + 1)
        except OSError as exc:
            self._refuse(name, f"cannot be read: {exc.strerror or exc}")
            return None
        if len(data) > limit:
            self._refuse(name, f"is larger than {limit} bytes")
            return None
        return data

    def _write(self, name: str, data: bytes) -> None:
        """Replace the file atomically: temporary file (0600, exclusive), fsync, replace."""
        self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._remove_stale_temps(name)
        temp = self.path / f".{name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._sync_dir()

    def _remove_stale_temps(self, name: str) -> None:
        """Remove this file's temporaries left by a crash between create and replace."""
        cutoff = time.time() - STALE_TEMP_S
        for temp in self.path.glob(f".{name}.*{_TEMP_SUFFIX}"):
            try:
                if temp.lstat().st_mtime < cutoff:
                    temp.unlink()
            except OSError:
                continue

    def _prune(self, name: str, data: bytes) -> None:
        """Rewrite a file with fewer entries while loading; a disk that refuses is logged, not
        raised, since what was loaded is good either way."""
        try:
            self._write(name, data)
        except OSError as exc:
            logger.info("directory cache: cannot prune %s: %s", name, exc.strerror or exc)

    def _sync_dir(self) -> None:
        """Make the rename durable (POSIX); nothing to do where directories cannot be opened."""
        if not hasattr(os, "O_DIRECTORY"):
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _refuse(self, name: str, reason: str) -> None:
        """Delete a file that cannot be trusted, and record why."""
        try:
            (self.path / name).unlink(missing_ok=True)
        except OSError as exc:
            reason += f" (and cannot be deleted: {exc.strerror or exc})"
        self._record(name, reason)

    def _record(self, name: str, reason: str) -> None:
        self.misses.append(CacheMiss(name, reason))
        logger.info("directory cache: %s %s", name, reason)
