"""The network view path selection reads: a verified microdesc consensus joined with the
microdescriptors it lists (dir-spec §3.4.1 router entries, ``params``, ``bandwidth-weights``;
§3.3 microdescriptors; tor-link.md §10.2, §10.3).

    build_network_view(verified, microdescs) -> NetworkView
    NetworkView.relays                       relays with a microdescriptor (usable)
    NetworkView.lacking_microdesc            consensus entries still without one
    NetworkView.param(name)                  a consensus parameter, tor's default and bounds

Only a :class:`~webtunnel_pt.tor.consensus_verify.VerifiedConsensus` builds a view, so nothing
unverified reaches path selection. A microdescriptor joins the entry whose ``m`` digest it
hashes to; the ``parse_microdescs`` step already dropped every other one. Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from webtunnel_pt.errors import LocalProtocolError
from webtunnel_pt.tor.consensus_verify import VerifiedConsensus
from webtunnel_pt.tor.docfields import INT32_MAX, PortPolicy
from webtunnel_pt.tor.microdesc import Microdescriptor
from webtunnel_pt.tor.routerstatus import RouterStatus


class Flag(StrEnum):
    """Relay flags a client acts on (dir-spec §3.4.1 ``known-flags``); others stay strings."""

    AUTHORITY = "Authority"
    BAD_EXIT = "BadExit"
    EXIT = "Exit"
    FAST = "Fast"
    GUARD = "Guard"
    HSDIR = "HSDir"
    MIDDLE_ONLY = "MiddleOnly"
    NO_ED_CONSENSUS = "NoEdConsensus"
    RUNNING = "Running"
    STABLE = "Stable"
    STALE_DESC = "StaleDesc"
    SYBIL = "Sybil"
    V2DIR = "V2Dir"
    VALID = "Valid"


#: The consensus parameters a client reads: name -> (default, minimum, maximum), as tor's
#: ``networkstatus_get_param`` callers give them (dir-spec §3.4.1 "params"; param-spec).
PARAM_BOUNDS: Mapping[str, tuple[int, int, int]] = {
    "circwindow": (1000, 100, 1000),  # circuit-level SENDME window (cells)
    "sendme_emit_min_version": (0, 0, 255),
    "sendme_accept_min_version": (0, 0, 255),
    "bwweightscale": (10000, 1, INT32_MAX),  # divisor of the bandwidth-weights
    "maxunmeasuredbw": (20, 0, INT32_MAX),  # kB/s cap on unmeasured relays' weight
    "min_paths_for_circs_pct": (60, 25, 95),
    "cbtdisabled": (0, 0, 1),
    "CircuitPriorityHalflifeMsec": (30000, 1, INT32_MAX),
    "ExtendByEd25519ID": (0, 0, 1),
    # Congestion control (prop 324) as tor 0.4.8+ reads it (congestion_control_common.c,
    # congestion_control_vegas.c for exit circuits): cells unless named otherwise.
    # Conflux (prop 329) as tor's conflux_params.c reads it.
    "cfx_enabled": (1, 0, 1),
    "cfx_num_legs_set": (2, 0, 8),  # legs a client links per set
    "cc_alg": (2, 0, 3),  # 0: fixed windows, 2: Vegas (NUM_CC_ALGS - 1 is 3)
    "cc_sendme_inc": (31, 1, 254),  # cells per circuit SENDME, as negotiated with an exit
    "cc_cwnd_init": (124, 31, 10000),
    "cc_cwnd_min": (124, 31, 1000),
    "cc_cwnd_max": (INT32_MAX, 500, INT32_MAX),
    "cc_cwnd_inc": (1, 1, 1000),
    "cc_cwnd_inc_pct_ss": (100, 1, 500),  # percent
    "cc_cwnd_inc_rate": (31, 1, 250),
    "cc_ewma_cwnd_pct": (50, 1, 255),  # percent
    "cc_ewma_max": (10, 2, INT32_MAX),
    "cc_ewma_ss": (2, 2, INT32_MAX),
    "cc_rtt_reset_pct": (100, 0, 100),  # percent
    "cc_vegas_alpha_exit": (186, 0, 1000),
    "cc_vegas_beta_exit": (248, 0, 1000),
    "cc_vegas_gamma_exit": (186, 0, 1000),
    "cc_vegas_delta_exit": (310, 0, INT32_MAX),
    "cc_sscap_exit": (600, 100, INT32_MAX),
    "cc_ss_max": (5000, 500, INT32_MAX),
    "cc_cwnd_full_gap": (4, 0, 0x7FFF),  # sendme_incs
    "cc_cwnd_full_minpct": (25, 0, 100),  # percent
    "cc_cwnd_full_per_cwnd": (1, 0, 1),
    # Flow control (prop 344; congestion_control_flow.c): cells of 498 bytes.
    "cc_xoff_client": (500, 1, 10000),
    "cc_xon_rate": (500, 1, 5000),
    "cc_xon_change_pct": (25, 1, 99),  # percent
    "cc_xon_ewma_cnt": (2, 2, 100),
}


@dataclass(frozen=True, slots=True)
class Relay:
    """A relay with everything a circuit through it needs."""

    nickname: str
    rsa_identity: bytes  # 20 bytes
    ed25519_identity: bytes | None  # 32 bytes, None when absent or the entry has NoEdConsensus
    address: str  # IPv4
    or_port: int
    ipv6: tuple[str, int] | None  # the first ``a`` line of the consensus or the microdesc
    flags: frozenset[str]
    bandwidth: int  # ``w Bandwidth=``, 0 when absent
    measured: int | None
    unmeasured: bool
    protocols: Mapping[str, frozenset[int]]
    policy: PortPolicy  # ``p`` (IPv4 exits)
    policy6: PortPolicy  # ``p6`` (IPv6 exits)
    family: frozenset[str]
    family_ids: frozenset[str]
    ntor_onion_key: bytes  # 32 bytes
    microdesc_digest: bytes

    def has(self, flag: Flag) -> bool:
        return flag.value in self.flags

    def allows_port(self, port: int) -> bool:
        """Whether the IPv4 exit-policy summary lets a stream to ``port`` out."""
        return self.policy.allows_port(port)

    def supports(self, protocol: str, version: int) -> bool:
        """Whether the ``pr`` line lists ``version`` of subprotocol ``protocol``."""
        return version in self.protocols.get(protocol, frozenset())


@dataclass(frozen=True, slots=True)
class NetworkView:
    """The relays of one verified consensus that have microdescriptors, and its parameters."""

    valid_after: int
    fresh_until: int
    valid_until: int
    relays: tuple[Relay, ...]  # sorted by RSA identity, as in the consensus
    lacking_microdesc: tuple[RouterStatus, ...]
    bandwidth_weights: Mapping[str, int]
    params: Mapping[str, int]  # as published; read them with :meth:`param`

    def param(self, name: str) -> int:
        """A parameter from :data:`PARAM_BOUNDS`: its default when absent, clamped into its
        bounds when out of them (as tor does)."""
        try:
            default, low, high = PARAM_BOUNDS[name]
        except KeyError:
            raise LocalProtocolError(f"no default known for consensus param {name!r}") from None
        return min(max(self.params.get(name, default), low), high)

    def needs_refetch(self, now: float) -> bool:
        """Whether ``fresh-until`` has passed (time to fetch the next consensus)."""
        return now >= self.fresh_until

    def missing_digests(self) -> list[bytes]:
        """The ``m`` digests to fetch from ``/tor/micro/d/``, in consensus order."""
        return [status.microdesc_digest for status in self.lacking_microdesc]


def _relay(status: RouterStatus, micro: Microdescriptor) -> Relay:
    ed_id = None if Flag.NO_ED_CONSENSUS.value in status.flags else micro.ed25519_id
    addresses = status.ipv6 or micro.ipv6
    return Relay(
        nickname=status.nickname,
        rsa_identity=status.identity,
        ed25519_identity=ed_id,
        address=status.address,
        or_port=status.or_port,
        ipv6=addresses[0] if addresses else None,
        flags=status.flags,
        bandwidth=status.bandwidth or 0,
        measured=status.measured,
        unmeasured=status.unmeasured,
        protocols=status.protocols,
        policy=micro.policy,
        policy6=micro.policy6,
        family=micro.family,
        family_ids=micro.family_ids,
        ntor_onion_key=micro.ntor_onion_key,
        microdesc_digest=micro.digest,
    )


def build_network_view(
    verified: VerifiedConsensus, microdescs: Iterable[Microdescriptor]
) -> NetworkView:
    """Join each consensus entry with the microdescriptor its ``m`` line names; entries with
    none are listed in ``lacking_microdesc``. Two entries may share one microdescriptor."""
    by_digest = {micro.digest: micro for micro in microdescs}
    consensus = verified.consensus
    relays: list[Relay] = []
    lacking: list[RouterStatus] = []
    for status in consensus.routers:
        micro = by_digest.get(status.microdesc_digest)
        if micro is None:
            lacking.append(status)
        else:
            relays.append(_relay(status, micro))
    return NetworkView(
        valid_after=consensus.valid_after,
        fresh_until=consensus.fresh_until,
        valid_until=consensus.valid_until,
        relays=tuple(relays),
        lacking_microdesc=tuple(lacking),
        bandwidth_weights=consensus.bandwidth_weights,
        params=consensus.params,
    )
