"""Fetch and verify the directory through the bridge, as tor does with a bridge: every document
comes over one CREATE_FAST circuit on the open channel (BEGIN_DIR, tor-link.md §10); no
authority is ever contacted directly (dir-spec §5; tor-link.md §10.2, §10.3). With a
:class:`~webtunnel_pt.tor.dircache.DirectoryCache`, only what the cache lacks is fetched. asyncio
glue over the sans-I/O parsers and checks.

    result = await fetch_network_view(channel, authorities, now=time.time, cache=cache)
    result.view      NetworkView: the verified consensus joined with its microdescriptors
    result.report    DirectoryReport: where the consensus came from, requests made,
                     microdescriptors fetched / from the cache, signatures (3/3), timings

Steps, each a GET on its own BEGIN_DIR stream of the one circuit, opened only when something
must be fetched:

1. ``/tor/status-vote/current/consensus-microdesc`` (compressed, dir-spec §6.1 and
   :data:`~webtunnel_pt.tor.directory.ACCEPT_ENCODING`), parsed;
2. the key certificates it needs and neither the caller nor the cache has:
   ``/tor/keys/fp-sk/<v3ident>-<sk>`` pairs joined by ``+`` (dir-spec §4.2); each one must be its
   authority's and valid at ``now`` (:func:`~webtunnel_pt.tor.keycert.verify_key_certificate`),
   then the consensus signatures and lifetime
   (:func:`~webtunnel_pt.tor.consensus_verify.verify_consensus`). A failure raises the error of
   the check that failed, naming the authority, and nothing else is fetched;
3. the microdescriptors the consensus lists and the cache lacks, up to
   :data:`MICRODESCS_PER_REQUEST` per request (``/tor/micro/d/<d1>-<d2>...``, digests in base64
   without ``=``, dir-spec §4.3); only those that hash to an ``m`` line are kept
   (:func:`~webtunnel_pt.tor.microdesc.parse_microdescs`). A batch answered 404 or 503
   (:data:`MISSING_MICRODESC_STATUSES`: a bridge that has not got them yet, or is busy) only
   leaves those missing, as tor counts a failed microdescriptor download and goes on; the view
   is built from what there is (relays without one are in ``lacking_microdesc``, unusable)
   and :attr:`DirectoryReport.microdescs_missing` counts them.

The cache (dir-spec §5.1 on when a client refetches):

- every cached file is re-verified as it is loaded (a bad one is refused, deleted and refetched;
  :attr:`DirectoryReport.cache_problems` says so);
- cached consensus FRESH (before ``fresh-until``) and every microdescriptor it lists cached:
  nothing is fetched and no circuit is opened;
- cached consensus only LIVE (up to 24 h past ``valid-until``): a new consensus is fetched. If
  that fails (the bridge errs, times out, or its consensus fails verification, or is not newer),
  the cached one is used, as tor keeps using a reasonably live consensus, and
  :attr:`DirectoryReport.refetch_error` says why; the failed document is never stored or used.
  Fail closed holds: whatever is used was verified, the cached consensus when it was loaded;
- certificates, the consensus and microdescriptors are stored only once verified (a
  microdescriptor: once it hashes to a listed digest). A store the disk refuses is reported,
  not raised: the cache only saves work.

Parsing, verifying, decoding and cache file work run in a thread (``asyncio.to_thread``): the
channel's reader and other circuits keep running while an 8,000-relay consensus parses (~0.4 s).

Every wait takes what is left of one :class:`~webtunnel_pt.deadlines.Deadline`. Every answer is
bounded, decoded, by what its document may be: :data:`MAX_CONSENSUS_ANSWER_BYTES` (the live
consensus is ~3 MiB), :data:`MAX_KEYS_ANSWER_BYTES`, :data:`MAX_MICRODESC_ANSWER_BYTES` per
batch, and :data:`MAX_MICRODESC_TOTAL_BYTES` for all microdescriptor answers together; the
bytes read before decoding get the same bound plus :data:`MAX_HEAD_BYTES`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from webtunnel_pt.deadlines import CIRCUIT_TIMEOUT_S, Deadline
from webtunnel_pt.errors import (
    DIRECTORY_REQUESTS_ATTRIBUTE,
    ChannelClosed,
    CircuitDestroyed,
    DirectoryError,
    HandshakeTimeout,
    KeyCertificateError,
    StreamEnded,
)
from webtunnel_pt.tor.authorities import DirAuthority
from webtunnel_pt.tor.cells import DestroyReason
from webtunnel_pt.tor.channel_circuit import ChannelCircuit, budget
from webtunnel_pt.tor.consensus import MAX_CONSENSUS_BYTES, Consensus, parse_consensus
from webtunnel_pt.tor.consensus_verify import (
    VerifiedConsensus,
    missing_certificates,
    verify_consensus,
)
from webtunnel_pt.tor.dircache import DirectoryCache, fresh_enough
from webtunnel_pt.tor.directory import (
    MAX_DIR_RESPONSE_BYTES,
    DirResponse,
    dir_request,
    parse_dir_response,
)
from webtunnel_pt.tor.dirreport import ConsensusSource, DirectoryReport, DirectoryResult
from webtunnel_pt.tor.keycert import (
    MAX_KEY_CERTIFICATES_BYTES,
    KeyCertificate,
    parse_key_certificates,
    verify_key_certificate,
)
from webtunnel_pt.tor.microdesc import Microdescriptor, parse_microdescs
from webtunnel_pt.tor.netview import Flag, build_network_view

if TYPE_CHECKING:
    from webtunnel_pt.tor.channel import Channel

logger = logging.getLogger(__name__)

CONSENSUS_PATH = "/tor/status-vote/current/consensus-microdesc"
KEYS_PATH = "/tor/keys/fp-sk/"
MICRODESC_PATH = "/tor/micro/d/"
#: Microdescriptors per request: tor's max_dl_per_request() (src/feature/nodelist/routerlist.c)
#: allows 500 when the request is tunnelled over BEGIN_DIR, as a bridge client's always is; the
#: 90 it uses over plain HTTP only keeps URLs under the 4096 bytes Squid accepts. 500 base64
#: digests make a ~22 KB request line, under the 50,000-byte head a tor directory server reads.
MICRODESCS_PER_REQUEST = 500
#: The consensus answer, decoded: the parser's own bound, 16 MiB. The live microdesc consensus
#: is ~2.9 MB for ~8,000 relays, so this is 5x headroom for growth, and still bounded (tor
#: itself takes up to 16 MiB for any directory download, MAX_DIR_DL_SIZE in directory.h).
MAX_CONSENSUS_ANSWER_BYTES = MAX_CONSENSUS_BYTES
#: A key-certificate answer, decoded: the parser's bound, 1 MiB (9 real certificates: ~25 KiB).
MAX_KEYS_ANSWER_BYTES = MAX_KEY_CERTIFICATES_BYTES
#: One microdescriptor answer (up to 500 of them), decoded: 4 MiB. The live network's ~8,000
#: microdescriptors take ~3.5 MiB in all, ~250 KiB per batch; a batch could only approach the
#: bound with every relay in it carrying a family line of hundreds of members.
MAX_MICRODESC_ANSWER_BYTES = MAX_DIR_RESPONSE_BYTES
#: All microdescriptor answers of one fetch together, decoded: 4x the live network's total.
MAX_MICRODESC_TOTAL_BYTES = 16 * 1024 * 1024
#: Bytes read before decoding may exceed the decoded bound by this much (status line, headers).
MAX_HEAD_BYTES = 64 * 1024
#: The whole fetch: the live consensus is ~3 MiB (~0.6 MiB compressed) and the microdescriptors
#: ~16 requests, all through one bridge that may be slow.
DIRECTORY_TIMEOUT_S = 120.0
#: Characters of an HTTP reason phrase put into an error message.
MAX_REASON_CHARS = 64
#: Answers to a microdescriptor batch that leave its microdescriptors missing instead of
#: failing the fetch: not found (the bridge lacks them yet) and busy. tor goes on after any
#: failed microdescriptor download (dirclient.c, handle_response_fetch_microdesc); other
#: statuses stay errors here, so a broken bridge is reported as such.
MISSING_MICRODESC_STATUSES = frozenset({404, 503})
#: Errors of a consensus refetch after which a still-live cached consensus is used instead.
REFETCH_ERRORS = (DirectoryError, HandshakeTimeout, ChannelClosed, CircuitDestroyed, StreamEnded)


def microdesc_paths(
    digests: Sequence[bytes], per_request: int = MICRODESCS_PER_REQUEST
) -> list[str]:
    """``/tor/micro/d/<d1>-<d2>-...`` for ``digests`` (32-byte SHA-256), in batches."""
    paths: list[str] = []
    for start in range(0, len(digests), per_request):
        batch = digests[start : start + per_request]
        names = (base64.b64encode(d).decode("ascii").rstrip("=") for d in batch)
        paths.append(MICRODESC_PATH + "-".join(names))
    return paths


def keys_path(wanted: Iterable[tuple[bytes, bytes]]) -> str:
    """``/tor/keys/fp-sk/<v3ident>-<signing key digest>+...`` in upper-case hex (dir-spec §4.2)."""
    return KEYS_PATH + "+".join(f"{fp.hex().upper()}-{sk.hex().upper()}" for fp, sk in wanted)


def _name(authority: DirAuthority) -> str:
    hexid = authority.v3ident.hex().upper()
    return f"{authority.nickname} ({hexid})" if authority.nickname else hexid


def _merge(*groups: Iterable[KeyCertificate]) -> list[KeyCertificate]:
    """One certificate per (v3ident, signing-key digest), the first seen winning."""
    merged: dict[tuple[bytes, bytes], KeyCertificate] = {}
    for group in groups:
        for cert in group:
            merged.setdefault((cert.identity_fingerprint, cert.signing_key_digest), cert)
    return list(merged.values())


class _Fetcher:
    """The directory requests of one call, on one circuit opened at the first request, under
    one deadline; with the report's counters and the cache's notes."""

    def __init__(self, channel: Channel, deadline: Deadline, cache: DirectoryCache | None) -> None:
        self.channel = channel
        self.deadline = deadline
        self.cache = cache
        self.circuit: ChannelCircuit | None = None
        self.requests = 0
        self.timings: list[tuple[str, float]] = []
        self.problems: list[str] = []
        self._misses_seen = len(cache.misses) if cache is not None else 0

    async def get(self, path: str, what: str, max_body: int) -> bytes:
        return _body(await self.request(path, max_body), what)

    async def request(self, path: str, max_body: int) -> DirResponse:
        """The answer to ``GET path``, whatever its status."""
        if self.circuit is None:
            self.circuit = await self.channel.create_fast_circuit(
                CIRCUIT_TIMEOUT_S, deadline=self.deadline
            )
        self.requests += 1
        return await _fetch(self.circuit, path, max_body, self.deadline)

    def timed(self, step: str, started: float) -> None:
        self.timings.append((step, time.monotonic() - started))

    async def store(self, what: str, write: Callable[[], None]) -> None:
        """Run a cache store in a thread; a refusal is noted and logged, not raised."""
        try:
            await asyncio.to_thread(write)
        except (OSError, DirectoryError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problems.append(f"{what}: not stored: {reason}")
            logger.info("directory cache: %s not stored: %s", what, reason)

    def cache_problems(self) -> tuple[str, ...]:
        misses = self.cache.misses[self._misses_seen :] if self.cache is not None else []
        return (*(f"{m.name}: {m.reason}" for m in misses), *self.problems)

    async def close(self) -> None:
        """DESTROY the directory circuit, if one was opened (a client sends reason NONE,
        tor-link.md §9)."""
        if self.circuit is None:
            return
        circuit = self.circuit
        circuit.circuit.destroy(DestroyReason.NONE)
        self.channel.end_circuit(
            circuit.circ_id, lambda: ChannelClosed("directory circuit closed"), discard=True
        )
        with contextlib.suppress(ChannelClosed):  # the step's own error, if any, matters more
            await self.channel.flush_if_open(circuit.circuit)


def _body(response: DirResponse, what: str) -> bytes:
    """The body of a 200 answer; any other status is a :class:`DirectoryError`."""
    if response.status != 200:
        # The reason phrase is the peer's text: only a short, printable ASCII one is shown.
        reason = response.reason[:MAX_REASON_CHARS]
        shown = reason if reason.isascii() and reason.isprintable() else "?"
        raise DirectoryError(f"{what}: the bridge answered HTTP {response.status} {shown}")
    return response.body


async def _fetch(
    circuit: ChannelCircuit, path: str, max_body: int, deadline: Deadline
) -> DirResponse:
    """BEGIN_DIR, ``GET path``, read to END (at most ``max_body`` + head bytes), decode (at most
    ``max_body`` bytes) in a thread."""
    seconds = deadline.remaining()
    stream_id = await circuit.begin_dir(seconds, deadline=deadline)
    await circuit.send(stream_id, dir_request(path))
    try:
        raw = await circuit.read_to_end(stream_id, max_body + MAX_HEAD_BYTES, deadline=deadline)
    except TimeoutError as exc:
        raise HandshakeTimeout(f"directory answer not complete within {seconds:.3g} s") from exc
    return await asyncio.to_thread(parse_dir_response, raw, max_body)


def _accept_certificates(
    body: bytes,
    wanted: Sequence[tuple[bytes, bytes]],
    by_id: dict[bytes, DirAuthority],
    now: float,
) -> list[KeyCertificate]:
    """The certificates of ``body`` that were asked for, each checked for its authority.
    Certificates nobody asked for are dropped. CPU work (RSA): run in a thread."""
    try:
        certificates = parse_key_certificates(body)
    except KeyCertificateError as exc:
        raise KeyCertificateError(f"key certificates from the bridge: {exc}") from exc
    accepted: list[KeyCertificate] = []
    asked = set(wanted)
    for cert in certificates:
        authority = by_id.get(cert.identity_fingerprint)
        if authority is None or (cert.identity_fingerprint, cert.signing_key_digest) not in asked:
            continue
        try:
            verify_key_certificate(cert, authority, now)
        except KeyCertificateError as exc:
            raise KeyCertificateError(f"authority {_name(authority)}: {exc}") from exc
        accepted.append(cert)
    return accepted


async def _certificates(
    fetcher: _Fetcher,
    consensus: Consensus,
    authorities: Sequence[DirAuthority],
    known: Sequence[KeyCertificate],
    now: float,
) -> list[KeyCertificate]:
    """The certificates the consensus needs that ``known`` lacks, fetched, checked and (with a
    cache) stored."""
    by_id = {a.v3ident: a for a in authorities}
    wanted = missing_certificates(consensus, by_id.keys(), known)
    if not wanted:
        return []
    body = await fetcher.get(keys_path(wanted), "key certificates", MAX_KEYS_ANSWER_BYTES)
    accepted = await asyncio.to_thread(_accept_certificates, body, wanted, by_id, now)
    cache = fetcher.cache
    if cache is not None and accepted:
        await fetcher.store("certificates", lambda: cache.store_certificates(accepted, now))
    return accepted


@dataclass
class _ConsensusOutcome:
    verified: VerifiedConsensus
    source: ConsensusSource
    fetched_certificates: list[KeyCertificate] = field(default_factory=list)
    refetch_error: str | None = None


async def _fetch_consensus(
    fetcher: _Fetcher,
    authorities: Sequence[DirAuthority],
    known: Sequence[KeyCertificate],
    now: Callable[[], float],
) -> tuple[VerifiedConsensus, bytes, list[KeyCertificate]]:
    """A new consensus, with the certificates it needs, verified; nothing stored yet."""
    started = time.monotonic()
    document = await fetcher.get(CONSENSUS_PATH, "consensus", MAX_CONSENSUS_ANSWER_BYTES)
    consensus = await asyncio.to_thread(parse_consensus, document)
    fetcher.timed("consensus", started)

    started = time.monotonic()
    fetched = await _certificates(fetcher, consensus, authorities, known, now())
    fetcher.timed("certificates", started)

    started = time.monotonic()
    ids = [a.v3ident for a in authorities]
    verified = await asyncio.to_thread(verify_consensus, consensus, ids, [*known, *fetched], now())
    fetcher.timed("verify", started)
    return verified, document, fetched


async def _current_consensus(
    fetcher: _Fetcher,
    authorities: Sequence[DirAuthority],
    known: Sequence[KeyCertificate],
    cached: VerifiedConsensus | None,
    now: Callable[[], float],
) -> _ConsensusOutcome:
    """The consensus to use: a FRESH cached one as it is, else a new one fetched and verified
    (and stored), else a still-live cached one (see the module docstring)."""
    if cached is not None and fresh_enough(cached.consensus, now()):
        return _ConsensusOutcome(cached, ConsensusSource.CACHE)
    try:
        verified, document, fetched = await _fetch_consensus(fetcher, authorities, known, now)
    except REFETCH_ERRORS as exc:
        if cached is None:
            raise
        logger.info("directory: using the cached consensus; no newer one: %s", exc)
        return _ConsensusOutcome(cached, ConsensusSource.CACHE, refetch_error=str(exc))
    if cached is not None and verified.consensus.valid_after <= cached.consensus.valid_after:
        why = "the bridge's consensus is not newer than the cached one"
        return _ConsensusOutcome(cached, ConsensusSource.CACHE, fetched, why)
    cache = fetcher.cache
    if cache is not None:
        await fetcher.store("consensus", lambda: cache.store_consensus(document))
    return _ConsensusOutcome(verified, ConsensusSource.NETWORK, fetched)


@dataclass
class _Microdescs:
    kept: dict[bytes, Microdescriptor] = field(default_factory=dict)
    fetched: int = 0
    cached: int = 0
    discarded: int = 0
    missing: int = 0


async def _microdescs(fetcher: _Fetcher, consensus: Consensus) -> _Microdescs:
    """The microdescriptors ``consensus`` lists: the cache's, then the rest fetched. What was
    fetched is stored even when a later batch fails, so a retry asks only for what is left."""
    found = _Microdescs()
    cache = fetcher.cache
    if cache is not None:
        batch = await asyncio.to_thread(cache.load_microdescs, consensus)
        found.kept.update((md.digest, md) for md in batch.microdescs)
        found.cached = len(found.kept)
    wanted = {status.microdesc_digest for status in consensus.routers}
    missing = sorted(wanted - found.kept.keys())
    asked = frozenset(missing)
    bodies: list[bytes] = []
    total = 0
    try:
        for path in microdesc_paths(missing, MICRODESCS_PER_REQUEST):
            response = await fetcher.request(path, MAX_MICRODESC_ANSWER_BYTES)
            if response.status in MISSING_MICRODESC_STATUSES:
                logger.info("directory: a microdescriptor batch: HTTP %d", response.status)
                continue
            body = _body(response, "microdescriptors")
            total += len(body)
            if total > MAX_MICRODESC_TOTAL_BYTES:
                raise DirectoryError(
                    f"microdescriptor answers exceed {MAX_MICRODESC_TOTAL_BYTES} bytes"
                )
            batch = await asyncio.to_thread(parse_microdescs, body, asked)
            bodies.append(body)
            for md in batch.microdescs:
                if md.digest not in found.kept:
                    found.kept[md.digest] = md
                    found.fetched += 1
                else:
                    found.discarded += 1
            found.discarded += batch.discarded
    finally:
        if cache is not None and bodies:
            await fetcher.store(
                "microdescriptors", lambda: cache.store_microdescs(bodies, consensus)
            )
    found.missing = len(wanted - found.kept.keys())
    if found.missing:
        logger.info("directory: %d of %d microdescriptors missing", found.missing, len(wanted))
    return found


async def fetch_network_view(
    channel: Channel,
    authorities: Sequence[DirAuthority],
    *,
    now: Callable[[], float] = time.time,
    certificates: Iterable[KeyCertificate] | None = None,
    cache: DirectoryCache | None = None,
    timeout_s: float = DIRECTORY_TIMEOUT_S,
    deadline: Deadline | None = None,
) -> DirectoryResult:
    """Fetch what is needed, verify and join the directory through the bridge at the other end
    of ``channel`` (see the module docstring).

    ``now`` is the wall clock the certificates and the consensus are checked against.
    ``certificates`` are ones already held and already checked for their authority; expired
    ones are ignored. ``cache``: a state directory's cache, read (re-verified) first and written
    with what was fetched and verified; without it everything is fetched. With a FRESH cache
    holding every listed microdescriptor, no circuit is opened. A cached consensus past
    ``fresh-until`` but still reasonably live is used when no newer verified one can be had
    (:attr:`DirectoryReport.refetch_error` says why); an unverified document never is.
    """
    wait = budget(timeout_s, deadline)
    fetcher = _Fetcher(channel, wait, cache)
    ids = [a.v3ident for a in authorities]
    # A held certificate that has expired signs nothing: fetch its successor instead.
    given = [cert for cert in certificates or () if now() <= cert.expires]
    cached_certs: list[KeyCertificate] = []
    cached: VerifiedConsensus | None = None
    try:
        if cache is not None:
            started = time.monotonic()
            cached_certs, cached = await asyncio.to_thread(_load_cache, cache, ids, given, now())
            fetcher.timed("cache", started)
        known = _merge(given, cached_certs)
        outcome = await _current_consensus(fetcher, authorities, known, cached, now)
        started = time.monotonic()
        found = await _microdescs(fetcher, outcome.verified.consensus)
        fetcher.timed("microdescs", started)
    except Exception as exc:
        # What a failed call still tells: how many requests it made before it stopped (the
        # probe shows that a refused consensus led to no other fetch).
        setattr(exc, DIRECTORY_REQUESTS_ATTRIBUTE, fetcher.requests)
        raise
    finally:
        await fetcher.close()

    verified = outcome.verified
    view = await asyncio.to_thread(build_network_view, verified, found.kept.values())
    exits = sum(1 for r in view.relays if r.has(Flag.EXIT) and not r.has(Flag.BAD_EXIT))
    report = DirectoryReport(
        timings=tuple(fetcher.timings),
        requests=fetcher.requests,
        signatures_valid=len(verified.signed_by),
        authorities=verified.authority_count,
        certificates_fetched=len(outcome.fetched_certificates),
        consensus_relays=len(verified.consensus.routers),
        relays=len(view.relays),
        exits=exits,
        microdescs=len(found.kept),
        discarded_microdescs=found.discarded,
        consensus_source=outcome.source,
        microdescs_fetched=found.fetched,
        microdescs_cached=found.cached,
        certificates_cached=len(known) - len(given),
        refetch_error=outcome.refetch_error,
        cache_problems=fetcher.cache_problems(),
        microdescs_missing=found.missing,
    )
    return DirectoryResult(view, report, tuple(_merge(known, outcome.fetched_certificates)))


def _load_cache(
    cache: DirectoryCache, ids: Sequence[bytes], given: Sequence[KeyCertificate], now: float
) -> tuple[list[KeyCertificate], VerifiedConsensus | None]:
    """The cache's certificates and its consensus, each re-verified (file I/O and RSA: run in
    a thread). A consensus is only loaded while live; FRESH or LIVE is decided by the caller."""
    certs = cache.load_certificates(ids, now)
    return certs, cache.load_consensus(ids, _merge(given, certs), now)
