"""Fetch and verify the directory through the bridge, as tor does with a bridge: every document
comes over one CREATE_FAST circuit on the open channel (BEGIN_DIR, tor-link.md §10); no
authority is ever contacted directly (dir-spec §5; tor-link.md §10.2, §10.3). asyncio glue over
the sans-I/O parsers and checks.

    result = await fetch_network_view(channel, authorities, now=time.time, deadline=deadline)
    result.view      NetworkView: the verified consensus joined with its microdescriptors
    result.report    DirectoryReport: timings per step, signatures (3/3), relay and exit
                     counts, discarded microdescriptors

Steps, each a GET on its own BEGIN_DIR stream of the one circuit:

1. ``/tor/status-vote/current/consensus-microdesc`` (compressed, dir-spec §6.1 and
   :data:`~webtunnel_pt.tor.directory.ACCEPT_ENCODING`), parsed;
2. the key certificates it needs and the caller does not have: ``/tor/keys/fp-sk/<v3ident>-<sk>``
   pairs joined by ``+`` (dir-spec §4.2); each one must be its authority's and valid at ``now``
   (:func:`~webtunnel_pt.tor.keycert.verify_key_certificate`), then the consensus signatures
   and lifetime (:func:`~webtunnel_pt.tor.consensus_verify.verify_consensus`). A failure raises
   the error of the check that failed, naming the authority, and nothing else is fetched;
3. the microdescriptors the consensus lists, up to :data:`MICRODESCS_PER_REQUEST` per request
   (``/tor/micro/d/<d1>-<d2>...``, digests in base64 without ``=``, dir-spec §4.3); only those
   that hash to an ``m`` line are kept (:func:`~webtunnel_pt.tor.microdesc.parse_microdescs`).

Every wait takes what is left of one :class:`~webtunnel_pt.deadlines.Deadline`; every body is
bounded (:data:`~webtunnel_pt.tor.directory.MAX_DIR_RESPONSE_BYTES` per answer, decoded, and
:data:`MAX_MICRODESC_TOTAL_BYTES` for all microdescriptor answers together).
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from webtunnel_pt.deadlines import CIRCUIT_TIMEOUT_S, Deadline
from webtunnel_pt.errors import ChannelClosed, DirectoryError, KeyCertificateError
from webtunnel_pt.tor.authorities import DirAuthority
from webtunnel_pt.tor.cells import DestroyReason
from webtunnel_pt.tor.channel_circuit import ChannelCircuit, budget
from webtunnel_pt.tor.consensus import Consensus, parse_consensus
from webtunnel_pt.tor.consensus_verify import missing_certificates, verify_consensus
from webtunnel_pt.tor.keycert import KeyCertificate, parse_key_certificates, verify_key_certificate
from webtunnel_pt.tor.microdesc import Microdescriptor, parse_microdescs
from webtunnel_pt.tor.netview import Flag, NetworkView, build_network_view

if TYPE_CHECKING:
    from webtunnel_pt.tor.channel import Channel

CONSENSUS_PATH = "/tor/status-vote/current/consensus-microdesc"
KEYS_PATH = "/tor/keys/fp-sk/"
MICRODESC_PATH = "/tor/micro/d/"
#: Microdescriptors per request: tor's max_dl_per_request() (src/feature/nodelist/routerlist.c)
#: allows 500 when the request is tunnelled over BEGIN_DIR, as a bridge client's always is; the
#: 90 it uses over plain HTTP only keeps URLs under the 4096 bytes Squid accepts. 500 base64
#: digests make a ~22 KB request line, under the 50,000-byte head a tor directory server reads.
MICRODESCS_PER_REQUEST = 500
#: All microdescriptor answers together, decoded: the live network's ~8,000 microdescriptors
#: take about 4 MiB; more than 16 MiB is a relay feeding us junk.
MAX_MICRODESC_TOTAL_BYTES = 16 * 1024 * 1024
#: The whole fetch: the live consensus is ~3 MiB (~0.6 MiB compressed) and the microdescriptors
#: ~90 requests, all through one bridge that may be slow.
DIRECTORY_TIMEOUT_S = 120.0
#: Characters of an HTTP reason phrase put into an error message.
MAX_REASON_CHARS = 64


@dataclass(frozen=True)
class DirectoryReport:
    """What the fetch did, for the probe's ``consensus`` layer to show."""

    timings: tuple[tuple[str, float], ...]  #: (step, seconds): consensus, certificates, ...
    requests: int  #: directory requests made (BEGIN_DIR streams)
    signatures_valid: int  #: configured authorities whose signature verified
    authorities: int  #: configured authorities
    certificates_fetched: int  #: key certificates fetched and accepted
    consensus_relays: int  #: entries in the consensus
    relays: int  #: entries with their microdescriptor (usable)
    exits: int  #: usable relays with the Exit flag and without BadExit
    microdescs: int  #: microdescriptors kept
    discarded_microdescs: int  #: received but not listed by the consensus, or malformed

    @property
    def signatures(self) -> str:
        """``3/3``: valid signatures of configured authorities / configured authorities."""
        return f"{self.signatures_valid}/{self.authorities}"


@dataclass(frozen=True)
class DirectoryResult:
    view: NetworkView
    report: DirectoryReport
    certificates: tuple[KeyCertificate, ...]  #: every certificate used (given and fetched)


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


class _Fetcher:
    """One circuit's directory requests, under one deadline, with the report's counters."""

    def __init__(self, circuit: ChannelCircuit, deadline: Deadline) -> None:
        self.circuit = circuit
        self.deadline = deadline
        self.requests = 0
        self.timings: list[tuple[str, float]] = []

    async def get(self, path: str, what: str) -> bytes:
        self.requests += 1
        response = await self.circuit.fetch_directory(
            path, timeout_s=self.deadline.remaining(), deadline=self.deadline
        )
        if response.status != 200:
            # The reason phrase is the peer's text: only a short, printable ASCII one is shown.
            reason = response.reason[:MAX_REASON_CHARS]
            shown = reason if reason.isascii() and reason.isprintable() else "?"
            raise DirectoryError(f"{what}: the bridge answered HTTP {response.status} {shown}")
        return response.body

    def timed(self, step: str, started: float) -> None:
        self.timings.append((step, time.monotonic() - started))


async def _certificates(
    fetcher: _Fetcher,
    consensus: Consensus,
    authorities: Sequence[DirAuthority],
    known: Sequence[KeyCertificate],
    now: float,
) -> list[KeyCertificate]:
    """The certificates the consensus needs that ``known`` lacks, fetched and each checked for
    the authority that asked for it. Certificates nobody asked for are dropped."""
    by_id = {a.v3ident: a for a in authorities}
    wanted = missing_certificates(consensus, by_id.keys(), known)
    if not wanted:
        return []
    body = await fetcher.get(keys_path(wanted), "key certificates")
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


async def _microdescs(fetcher: _Fetcher, consensus: Consensus) -> tuple[list[Microdescriptor], int]:
    wanted = sorted({status.microdesc_digest for status in consensus.routers})
    kept: list[Microdescriptor] = []
    discarded = 0
    total = 0
    for path in microdesc_paths(wanted):
        body = await fetcher.get(path, "microdescriptors")
        total += len(body)
        if total > MAX_MICRODESC_TOTAL_BYTES:
            raise DirectoryError(
                f"microdescriptor answers exceed {MAX_MICRODESC_TOTAL_BYTES} bytes"
            )
        batch = parse_microdescs(body, wanted)
        kept.extend(batch.microdescs)
        discarded += batch.discarded
    return kept, discarded


async def fetch_network_view(
    channel: Channel,
    authorities: Sequence[DirAuthority],
    *,
    now: Callable[[], float] = time.time,
    certificates: Iterable[KeyCertificate] = (),
    timeout_s: float = DIRECTORY_TIMEOUT_S,
    deadline: Deadline | None = None,
) -> DirectoryResult:
    """Fetch, verify and join the directory through the bridge at the other end of
    ``channel`` (see the module docstring). ``now`` is the wall clock the certificates and the
    consensus are checked against; ``certificates`` are ones already held and already checked for
    their authority (a cache); expired ones are ignored."""
    wait = budget(timeout_s, deadline)
    # A held certificate that has expired signs nothing: fetch its successor instead.
    known = [cert for cert in certificates if now() <= cert.expires]
    circuit = await channel.create_fast_circuit(CIRCUIT_TIMEOUT_S, deadline=wait)
    fetcher = _Fetcher(circuit, wait)
    try:
        started = time.monotonic()
        consensus = parse_consensus(await fetcher.get(CONSENSUS_PATH, "consensus"))
        fetcher.timed("consensus", started)

        started = time.monotonic()
        fetched = await _certificates(fetcher, consensus, authorities, known, now())
        fetcher.timed("certificates", started)

        started = time.monotonic()
        ids = [a.v3ident for a in authorities]
        verified = verify_consensus(consensus, ids, [*known, *fetched], now())
        fetcher.timed("verify", started)

        started = time.monotonic()
        microdescs, discarded = await _microdescs(fetcher, consensus)
        fetcher.timed("microdescs", started)
    finally:
        _close(channel, circuit)
        with contextlib.suppress(ChannelClosed):  # the step's own error, if any, matters more
            await channel.flush_if_open(circuit.circuit)

    view = build_network_view(verified, microdescs)
    exits = sum(1 for r in view.relays if r.has(Flag.EXIT) and not r.has(Flag.BAD_EXIT))
    report = DirectoryReport(
        timings=tuple(fetcher.timings),
        requests=fetcher.requests,
        signatures_valid=len(verified.signed_by),
        authorities=verified.authority_count,
        certificates_fetched=len(fetched),
        consensus_relays=len(consensus.routers),
        relays=len(view.relays),
        exits=exits,
        microdescs=len(microdescs),
        discarded_microdescs=discarded,
    )
    return DirectoryResult(view, report, (*known, *fetched))


def _close(channel: Channel, circuit: ChannelCircuit) -> None:
    """DESTROY the directory circuit (a client sends reason NONE, tor-link.md §9)."""
    circuit.circuit.destroy(DestroyReason.NONE)
    channel.end_circuit(
        circuit.circ_id, lambda: ChannelClosed("directory circuit closed"), discard=True
    )
