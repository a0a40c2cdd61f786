"""What a directory fetch yields: the verified network view and a report of how it was had
(requests, signatures, cache use, timings), which the probe's ``consensus`` layer and the
client's bootstrap show. Made by :func:`~webtunnel_pt.tor.dirmgr.fetch_network_view`.

    result.view             NetworkView
    result.report.signatures    "3/3"
    result.report.consensus_source  ConsensusSource.NETWORK or .CACHE

Sans-I/O: plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from webtunnel_pt.tor.keycert import KeyCertificate
from webtunnel_pt.tor.netview import NetworkView


class ConsensusSource(StrEnum):
    """Where the consensus in use came from."""

    NETWORK = "network"  # fetched through the bridge in this call
    CACHE = "cache"  # the state directory's, re-verified as it was loaded


@dataclass(frozen=True)
class DirectoryReport:
    """What the fetch did, for the probe's ``consensus`` layer to show."""

    timings: tuple[tuple[str, float], ...]  #: (step, seconds): cache, consensus, ...
    requests: int  #: directory requests made (BEGIN_DIR streams); 0: all from the cache
    signatures_valid: int  #: configured authorities whose signature verified
    authorities: int  #: configured authorities
    certificates_fetched: int  #: key certificates fetched and accepted
    consensus_relays: int  #: entries in the consensus
    relays: int  #: entries with their microdescriptor (usable)
    exits: int  #: usable relays with the Exit flag and without BadExit
    microdescs: int  #: microdescriptors kept (fetched + from the cache)
    discarded_microdescs: int  #: received but not listed by the consensus, or malformed
    consensus_source: ConsensusSource = ConsensusSource.NETWORK
    microdescs_fetched: int = 0  #: microdescriptors fetched and kept
    microdescs_cached: int = 0  #: microdescriptors taken from the cache
    certificates_cached: int = 0  #: key certificates taken from the cache
    #: Why a LIVE cached consensus is in use though a new one was fetched for (None otherwise).
    refetch_error: str | None = None
    #: Cache files (or entries) refused on load, stores the disk refused: "<file>: <reason>".
    cache_problems: tuple[str, ...] = ()
    #: Listed by the consensus but neither cached nor received (a batch answered 404 or 503,
    #: or left out of an answer): those relays are unusable until a later fetch.
    microdescs_missing: int = 0

    @property
    def signatures(self) -> str:
        """``3/3``: valid signatures of configured authorities / configured authorities."""
        return f"{self.signatures_valid}/{self.authorities}"


@dataclass(frozen=True)
class DirectoryResult:
    view: NetworkView
    report: DirectoryReport
    certificates: tuple[KeyCertificate, ...]  #: every certificate used (given, cached, fetched)
