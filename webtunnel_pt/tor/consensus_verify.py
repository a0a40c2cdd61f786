"""Whether a parsed consensus may be used: its authority signatures and its lifetime (dir-spec
§3.4.1 "directory-signature", §1.3 on signature padding, §5.1 on client use; tor-link.md §10.2).

    verify_consensus(consensus, authority_ids, certificates, now) -> VerifiedConsensus
    signature_status(...)    -> {v3ident: None (valid) or why not}
    missing_certificates(...) -> [(v3ident, signing-key digest)]  what to fetch from /tor/keys/
    check_liveness(consensus, now)

Signatures: each ``directory-signature`` is RSA PKCS#1 v1.5 type-1 padding of the bare digest
(no DigestInfo) of the signed portion, SHA-256 or SHA-1 as its algorithm names, made with the
signing key of an authority key certificate whose identity is the signature's v3ident and whose
signing key hashes to the signature's signing-key digest. A configured authority counts once
however many valid signatures it made; signatures from authorities that are not configured are
ignored. The consensus is accepted only when more than half of the configured authorities
signed it validly. The certificates themselves (signed by the identity key, not expired at
fetch time) are checked where they are parsed; here a certificate past its ``expires`` at
``now`` does not count.

Lifetime: unusable before ``valid-after`` less :data:`ALLOWED_SKEW_S`, and after ``valid-until``
plus :data:`REASONABLY_LIVE_S` (tor's "reasonably live" consensus, dir-spec §5.1).
:meth:`Consensus.needs_refetch` says when ``fresh-until`` has passed. Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from webtunnel_pt.errors import ConsensusNotYetValid, ConsensusSignatureError, ConsensusStale
from webtunnel_pt.tor.certs import rsa_raw_verify
from webtunnel_pt.tor.consensus import Consensus

#: How far ahead of our clock ``valid-after`` may be: one hour, the consensus interval, so a
#: client whose clock is behind by up to one period still uses the newest consensus. A
#: consensus from the future cannot be forged (it is signed), so the margin only absorbs skew.
ALLOWED_SKEW_S = 60 * 60
#: How long after ``valid-until`` a consensus is still "reasonably live" (tor's
#: REASONABLY_LIVE_TIME, 24 h): the network changes slowly enough to build circuits with it.
REASONABLY_LIVE_S = 24 * 60 * 60


class AuthorityCertificate(Protocol):
    """What verification reads from an authority key certificate (dir-spec §3.1)."""

    @property
    def identity_fingerprint(self) -> bytes: ...  # 20 bytes: the authority's v3ident

    @property
    def signing_key(self) -> rsa.RSAPublicKey: ...

    @property
    def signing_key_digest(self) -> bytes: ...  # SHA-1 of the signing key's PKCS#1 DER

    @property
    def expires(self) -> float: ...  # POSIX seconds (dir-key-expires)


@dataclass(frozen=True, slots=True)
class VerifiedConsensus:
    """A consensus whose signatures and lifetime were checked at ``verified_at``; only this
    type builds a :class:`webtunnel_pt.tor.netview.NetworkView`."""

    consensus: Consensus
    signed_by: frozenset[bytes]  # v3idents of configured authorities with a valid signature
    authority_count: int  # configured authorities
    verified_at: float


def _index(
    certificates: Iterable[AuthorityCertificate],
) -> dict[tuple[bytes, bytes], list[AuthorityCertificate]]:
    index: dict[tuple[bytes, bytes], list[AuthorityCertificate]] = {}
    for cert in certificates:
        key = (cert.identity_fingerprint, cert.signing_key_digest)
        index.setdefault(key, []).append(cert)
    return index


def signature_status(
    consensus: Consensus,
    authority_ids: Collection[bytes],
    certificates: Iterable[AuthorityCertificate],
    now: float,
) -> dict[bytes, str | None]:
    """For each configured authority: None when one of its signatures verifies, else why none
    does (the reason for its last signature, or "no signature")."""
    index = _index(certificates)
    status: dict[bytes, str | None] = dict.fromkeys(authority_ids, "no signature")
    for sig in consensus.signatures:
        if sig.identity not in status or status[sig.identity] is None:
            continue  # not configured (ignored), or already counted once
        certs = index.get((sig.identity, sig.signing_key_digest), [])
        live = [cert for cert in certs if now <= cert.expires]
        digest = consensus.signed_digests[sig.algorithm]
        if not certs:
            status[sig.identity] = (
                f"no key certificate for signing key {sig.signing_key_digest.hex().upper()}"
            )
        elif not live:
            status[sig.identity] = "its key certificate has expired"
        elif any(rsa_raw_verify(cert.signing_key, sig.signature, digest) for cert in live):
            status[sig.identity] = None
        else:
            status[sig.identity] = f"its {sig.algorithm} signature does not verify"
    return status


def missing_certificates(
    consensus: Consensus,
    authority_ids: Collection[bytes],
    certificates: Iterable[AuthorityCertificate],
) -> list[tuple[bytes, bytes]]:
    """(v3ident, signing-key digest) of each configured authority's signature that no given
    certificate matches, sorted and without repeats: what to fetch from ``/tor/keys/fp-sk/``
    (or ``/tor/keys/fp/`` by the v3ident alone)."""
    have = set(_index(certificates))
    wanted = {
        (sig.identity, sig.signing_key_digest)
        for sig in consensus.signatures
        if sig.identity in authority_ids
    }
    return sorted(wanted - have)


def check_liveness(consensus: Consensus, now: float) -> None:
    """Raise unless ``now`` is inside the window in which a client may use the consensus."""
    if now < consensus.valid_after - ALLOWED_SKEW_S:
        raise ConsensusNotYetValid(
            f"consensus is not valid until {consensus.valid_after} (now {int(now)}, "
            f"allowed skew {ALLOWED_SKEW_S} s)"
        )
    if now > consensus.valid_until + REASONABLY_LIVE_S:
        raise ConsensusStale(
            f"consensus expired at {consensus.valid_until} (now {int(now)}), more than "
            f"{REASONABLY_LIVE_S} s ago"
        )


def verify_consensus(
    consensus: Consensus,
    authority_ids: Collection[bytes],
    certificates: Iterable[AuthorityCertificate],
    now: float,
) -> VerifiedConsensus:
    """Check the signatures (more than half of the configured authorities), then the lifetime.

    ``authority_ids`` are the configured authorities' v3idents (20 bytes each). Raises
    :class:`ConsensusSignatureError` naming each authority that did not count and why, or a
    :class:`ConsensusNotLive` subclass.
    """
    configured = frozenset(authority_ids)
    needed = len(configured) // 2 + 1
    status = signature_status(consensus, configured, certificates, now)
    valid = frozenset(ident for ident, why in status.items() if why is None)
    if not configured or len(valid) < needed:
        # The names come from the unverified document: only plain nicknames reach a message.
        names = {
            source.identity: source.nickname
            for source in consensus.dir_sources
            if source.nickname.isascii() and source.nickname.isalnum() and len(source.nickname) < 20
        }
        failures = {
            ident.hex().upper(): why for ident, why in sorted(status.items()) if why is not None
        }
        detail = "; ".join(
            f"{names.get(bytes.fromhex(ident), '?')} ({ident}): {why}"
            for ident, why in failures.items()
        )
        raise ConsensusSignatureError(
            f"consensus signed validly by {len(valid)} of {len(configured)} configured "
            f"authorities, {needed} needed" + (f": {detail}" if detail else ""),
            valid=len(valid),
            needed=needed,
            failures=failures,
        )
    check_liveness(consensus, now)
    return VerifiedConsensus(consensus, valid, len(configured), now)
