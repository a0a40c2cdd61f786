"""tor.consensus and tor.consensus_verify: the microdesc consensus (dir-spec §3.4.1), parsed from
documents written and signed here with test authorities (tests/support/netdocs.py), then the
mutations a hostile bridge could serve."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import dir_capture, dirauth
from tests.support import netdocs as nd
from webtunnel_pt.errors import (
    ConsensusError,
    ConsensusNotYetValid,
    ConsensusSignatureError,
    ConsensusStale,
    DirectoryError,
)
from webtunnel_pt.tor import consensus as consensus_mod
from webtunnel_pt.tor import routerstatus
from webtunnel_pt.tor.authorities import parse_dir_authority
from webtunnel_pt.tor.consensus import Consensus, parse_consensus
from webtunnel_pt.tor.consensus_verify import (
    ALLOWED_SKEW_S,
    REASONABLY_LIVE_S,
    VerifiedConsensus,
    check_liveness,
    missing_certificates,
    verify_consensus,
)
from webtunnel_pt.tor.keycert import parse_key_certificate, parse_key_certificates

AUTHS = nd.authorities()
CONFIGURED = AUTHS[:3]
IDS = [a.v3ident for a in CONFIGURED]
CERTS = [a.certificate() for a in AUTHS]
NOW = nd.VALID_AFTER + 600
DOC, MICROS = nd.network(4)


def signed_by(signers: list[tuple[nd.FakeAuthority, str | None]], **kw: object) -> Consensus:
    order = sorted(range(4), key=nd.router_identity)
    entries = [nd.router_entry(i, MICROS[i].digest) for i in order]
    corrupt = kw.pop("corrupt", ())
    body = nd.consensus_body(entries, **kw)  # type: ignore[arg-type]
    return parse_consensus(nd.sign_consensus(body, signers, corrupt=corrupt))  # type: ignore[arg-type]


def verify(
    c: Consensus, certs: list[nd.FakeCertificate] = CERTS, now: float = NOW
) -> VerifiedConsensus:
    return verify_consensus(c, IDS, certs, now)


def mutate(old: bytes, new: bytes, doc: bytes = DOC) -> bytes:
    assert doc.count(old) >= 1, old
    return doc.replace(old, new, 1)


# -- parsing ----------------------------------------------------------------------------------


def test_parses_header_sources_routers_footer() -> None:
    c = parse_consensus(DOC)
    assert c.consensus_method == 34
    assert (c.valid_after, c.fresh_until, c.valid_until) == (
        nd.VALID_AFTER,
        nd.VALID_AFTER + 3600,
        nd.VALID_AFTER + 3 * 3600,
    )
    assert c.voting_delay == (300, 300)
    assert c.known_flags == frozenset(nd.KNOWN_FLAGS.split())
    assert dict(c.params) == {"circwindow": 800, "bwweightscale": 10000}
    assert c.bandwidth_weights["Wgg"] == 5806 and len(c.bandwidth_weights) == 19
    assert [s.nickname for s in c.dir_sources] == ["auth0", "auth1", "auth2"]
    assert c.dir_sources[1].identity == AUTHS[1].v3ident
    assert c.dir_sources[1].contact == "auth1@example.org"
    assert c.dir_sources[1].vote_digest == bytes.fromhex("AB" * 20)
    assert (c.dir_sources[0].dir_port, c.dir_sources[0].or_port) == (7000, 5000)
    assert [r.identity for r in c.routers] == sorted(nd.router_identity(i) for i in range(4))
    relay = next(r for r in c.routers if r.nickname == "relay3")
    assert relay.identity == nd.router_identity(3)
    assert relay.address == "10.0.0.4" and relay.or_port == 9001 and relay.dir_port == 0
    assert relay.ipv6 == (("2001:db8::4", 9001),)
    assert relay.flags == {"Fast", "Running", "Stable", "Valid"}
    assert relay.version == "Tor 0.4.9.11"
    assert relay.protocols["Link"] == frozenset({1, 2, 3, 4, 5})
    assert (relay.bandwidth, relay.measured, relay.unmeasured) == (1000, None, False)
    assert relay.microdesc_digest == MICROS[3].digest
    assert relay.published == nd.VALID_AFTER - 1800
    assert [(s.algorithm, s.identity) for s in c.signatures] == [("sha256", i) for i in IDS]


def test_signed_digest_covers_through_the_space_after_the_first_keyword() -> None:
    end = DOC.index(b"directory-signature ") + len(b"directory-signature ")
    assert parse_consensus(DOC).signed_digests == {"sha256": hashlib.sha256(DOC[:end]).digest()}


def test_w_line_measured_and_unmeasured() -> None:
    doc = mutate(b"w Bandwidth=1000\n", b"w Bandwidth=20 Measured=30 Unmeasured=1\n")
    relay = parse_consensus(doc).routers[0]
    assert (relay.bandwidth, relay.measured, relay.unmeasured) == (20, 30, True)


def test_unknown_keywords_are_skipped_before_the_signatures() -> None:
    doc = mutate(b"known-flags", b"future-header x y\nknown-flags")
    doc = mutate(b"m ", b"future-router-line 1\nm ", doc)
    doc = mutate(b"directory-footer\n", b"directory-footer\nfuture-footer 7\n", doc)
    assert len(parse_consensus(doc).routers) == 4


def test_needs_refetch_once_fresh_until_passes() -> None:
    c = parse_consensus(DOC)
    assert not c.needs_refetch(c.fresh_until - 1)
    assert c.needs_refetch(c.fresh_until)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"3 microdesc", b"3"),  # the ns flavour
        (b"3 microdesc", b"2 microdesc"),
        (b"vote-status consensus", b"vote-status vote"),
        (b"vote-status consensus\n", b""),
        (b"valid-after", b"valid-after 2026-01-01 12:00:00\nvalid-after"),  # repeated
        (b"known-flags", b"known-flags Exit\nknown-flags"),
        (b"valid-until 2026-01-01 15", b"valid-until 2026-01-01 11"),  # out of order
        (b"valid-after 2026-01-01", b"valid-after 2026-02-30"),
        (b"params circwindow=800", b"params circwindow=800 circwindow=1"),
        (b"params circwindow=800", b"params circwindow=99999999999"),
        (b"params circwindow=800", b"params circwindow"),
        (b"s Fast", b"s Fast Unknown"),  # a flag not in known-flags
        (b"s Fast Running Stable Valid\n", b""),  # no s line
        (b"m ", b"m A"),  # digest not 32 bytes
        (b"v Tor", b"v Tor\nv Tor"),
        (b"pr Cons=1-2", b"pr Cons=2-1"),
        (b"pr Cons=1-2", b"pr Cons=1-64"),
        (b"w Bandwidth=1000", b"w Bandwidth=-5"),
        (b"a [2001:db8::1]:9001", b"a 10.0.0.1:9001"),
        (b" 9001 0\n", b" 0 0\n"),  # ORPort 0
        (b"r relay", b"r relay-with-a-dash"),
        (b" 10.0.0.", b" 300.0.0."),
        (b"contact auth0", b"vote-digest 00\ncontact auth0"),
        (b"dir-source auth0", b"s Fast\ndir-source auth0"),  # router line in the authorities
        (b"directory-footer\n", b"directory-footer\nr x AAAA 2026-01-01 00:00:00 1.2.3.4 1 0\n"),
        (b"bandwidth-weights", b"bandwidth-weights Wbd=1\nbandwidth-weights"),
        (b"directory-signature sha256", b"directory-signature sha256 extra"),
        (b"directory-signature sha256 ", b"directory-signature sha256 X "),
        (b"-----BEGIN SIGNATURE-----", b"-----BEGIN ID SIGNATURE-----"),
    ],
)
def test_malformed_documents_are_refused(old: bytes, new: bytes) -> None:
    doc = mutate(old, new)
    if new.startswith(b"-----BEGIN ID"):
        doc = mutate(b"-----END SIGNATURE-----", b"-----END ID SIGNATURE-----", doc)
    with pytest.raises(DirectoryError):
        parse_consensus(doc)


def test_routers_must_be_sorted_and_unique() -> None:
    descending = sorted(range(4), key=nd.router_identity, reverse=True)
    body = nd.consensus_body([nd.router_entry(i, MICROS[i].digest) for i in descending])
    with pytest.raises(ConsensusError, match="sorted"):
        parse_consensus(nd.sign_consensus(body, [(AUTHS[0], "sha256")]))
    twice = [nd.router_entry(0, MICROS[0].digest)] * 2
    with pytest.raises(ConsensusError, match="sorted"):
        parse_consensus(nd.sign_consensus(nd.consensus_body(twice), [(AUTHS[0], None)]))


def test_signatures_with_unknown_algorithms_are_ignored() -> None:
    doc = DOC.replace(b"directory-signature sha256", b"directory-signature sha3-256", 1)
    c = parse_consensus(doc)
    assert [s.identity for s in c.signatures] == IDS[1:]
    assert verify(c).signed_by == frozenset(IDS[1:])
    with pytest.raises(ConsensusError, match="no directory-signature with a known algorithm"):
        parse_consensus(DOC.replace(b"directory-signature sha256", b"directory-signature md5"))


def test_extra_signature_arguments_are_ignored() -> None:
    head, tail = DOC.split(b"\n-----BEGIN SIGNATURE", 1)
    c = parse_consensus(head + b" future-arg\n-----BEGIN SIGNATURE" + tail)
    assert verify(c).signed_by == frozenset(IDS)


def test_only_signatures_may_follow_the_first_signature() -> None:
    with pytest.raises(ConsensusError, match="after the signatures"):
        parse_consensus(DOC + b"r late AAAA\n")
    with pytest.raises(ConsensusError, match="after the signatures"):
        parse_consensus(DOC + b"unknown-but-unsigned 1\n")


def test_a_consensus_needs_a_signature_and_a_leading_version_line() -> None:
    body = DOC[: DOC.index(b"directory-signature")]
    with pytest.raises(ConsensusError, match="no directory-signature"):
        parse_consensus(body)
    with pytest.raises(ConsensusError, match="start with"):
        parse_consensus(b"vote-status consensus\n" + DOC)
    with pytest.raises(DirectoryError):  # the tokenizer's or ours: nothing before the start
        parse_consensus(b"\n" + DOC)


def test_router_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consensus_mod, "MAX_ROUTERS", 3)
    with pytest.raises(ConsensusError, match="more than 3 relays"):
        parse_consensus(DOC)


def test_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consensus_mod, "MAX_CONSENSUS_BYTES", len(DOC) - 1)
    with pytest.raises(ConsensusError, match="larger than"):
        parse_consensus(DOC)


# -- signatures -------------------------------------------------------------------------------


def test_three_of_three_signatures_verify() -> None:
    verified = verify(parse_consensus(DOC))
    assert verified.signed_by == frozenset(IDS)
    assert verified.authority_count == 3 and verified.verified_at == NOW


@pytest.mark.parametrize("algorithms", [(None, None, None), ("sha1", "sha256", None)])
def test_sha1_and_mixed_digests_verify(algorithms: tuple[str | None, ...]) -> None:
    c = signed_by(list(zip(CONFIGURED, algorithms, strict=True)))
    assert set(c.signed_digests) == {a or "sha1" for a in algorithms}
    assert verify(c).signed_by == frozenset(IDS)


def test_a_signature_over_the_other_digest_does_not_verify() -> None:
    doc = nd.sign_consensus(
        nd.consensus_body([nd.router_entry(0, MICROS[0].digest)]),
        [(a, "sha1") for a in CONFIGURED],
    )
    relabelled = doc.replace(b"directory-signature sha1", b"directory-signature sha256")
    with pytest.raises(ConsensusSignatureError, match="sha256 signature does not verify"):
        verify(parse_consensus(relabelled))


def test_one_bad_signature_of_three_still_passes_two_do_not() -> None:
    signers = [(a, "sha256") for a in CONFIGURED]
    assert verify(signed_by(signers, corrupt=(1,))).signed_by == {IDS[0], IDS[2]}
    with pytest.raises(ConsensusSignatureError) as info:
        verify(signed_by(signers, corrupt=(0, 2)))
    assert (info.value.valid, info.value.needed) == (1, 2)
    assert info.value.failures == {
        IDS[0].hex().upper(): "its sha256 signature does not verify",
        IDS[2].hex().upper(): "its sha256 signature does not verify",
    }
    assert "auth0 (" in str(info.value) and "auth2 (" in str(info.value)


def test_only_plain_dir_source_nicknames_reach_the_message() -> None:
    doc = mutate(b"dir-source auth0 ", b"dir-source <script>auth0 ")
    with pytest.raises(ConsensusSignatureError) as info:
        verify(parse_consensus(doc))
    assert "<script>" not in str(info.value)
    assert f"? ({IDS[0].hex().upper()})" in str(info.value)


def test_a_changed_body_fails_every_signature() -> None:
    tampered = mutate(b"w Bandwidth=1000", b"w Bandwidth=9000")
    with pytest.raises(ConsensusSignatureError) as info:
        verify(parse_consensus(tampered))
    assert info.value.valid == 0 and len(info.value.failures) == 3


def test_unknown_authorities_are_ignored_and_do_not_count() -> None:
    c = signed_by([(AUTHS[3], "sha256"), (AUTHS[0], "sha256"), (AUTHS[4], "sha256")])
    with pytest.raises(ConsensusSignatureError) as info:
        verify(c)
    assert info.value.valid == 1
    assert info.value.failures == {
        IDS[1].hex().upper(): "no signature",
        IDS[2].hex().upper(): "no signature",
    }


def test_repeated_signatures_from_one_authority_count_once() -> None:
    c = signed_by([(AUTHS[0], "sha256"), (AUTHS[0], "sha1"), (AUTHS[0], None)])
    with pytest.raises(ConsensusSignatureError, match="by 1 of 3"):
        verify(c)


def test_a_majority_is_more_than_half() -> None:
    c = signed_by([(a, "sha256") for a in AUTHS[:2]])
    ids4 = [a.v3ident for a in AUTHS[:4]]
    with pytest.raises(ConsensusSignatureError, match="2 of 4 configured authorities, 3 needed"):
        verify_consensus(c, ids4, CERTS, NOW)
    assert verify_consensus(c, IDS, CERTS, NOW).signed_by == frozenset(IDS[:2])


def test_no_configured_authority_accepts_nothing() -> None:
    with pytest.raises(ConsensusSignatureError, match="0 of 0"):
        verify_consensus(parse_consensus(DOC), [], CERTS, NOW)


def test_missing_and_expired_certificates() -> None:
    c = parse_consensus(DOC)
    assert missing_certificates(c, IDS, CERTS[:1]) == sorted(
        (a.v3ident, a.signing_key_digest) for a in CONFIGURED[1:]
    )
    assert missing_certificates(c, IDS, CERTS) == []
    assert missing_certificates(c, IDS[:1], []) == [(IDS[0], CONFIGURED[0].signing_key_digest)]
    with pytest.raises(ConsensusSignatureError) as info:
        verify(c, certs=CERTS[:1])
    assert info.value.failures[IDS[1].hex().upper()].startswith("no key certificate for")
    expired = [CONFIGURED[0].certificate(expires=NOW - 1), *CERTS[1:2]]
    with pytest.raises(ConsensusSignatureError) as info:
        verify(c, certs=expired)
    assert info.value.failures[IDS[0].hex().upper()] == "its key certificate has expired"


def test_a_certificate_for_another_signing_key_does_not_match() -> None:
    c = parse_consensus(DOC)
    wrong = [
        nd.FakeCertificate(
            a.v3ident, AUTHS[4].signing.public_key(), a.signing_key_digest, NOW + 3600
        )
        for a in CONFIGURED
    ]
    with pytest.raises(ConsensusSignatureError, match="does not verify"):
        verify(c, certs=wrong)


# -- liveness ---------------------------------------------------------------------------------


def test_liveness_window() -> None:
    c = parse_consensus(DOC)
    check_liveness(c, c.valid_after - ALLOWED_SKEW_S)
    check_liveness(c, c.valid_until + REASONABLY_LIVE_S)
    with pytest.raises(ConsensusNotYetValid):
        check_liveness(c, c.valid_after - ALLOWED_SKEW_S - 1)
    with pytest.raises(ConsensusStale):
        check_liveness(c, c.valid_until + REASONABLY_LIVE_S + 1)
    with pytest.raises(ConsensusStale):
        verify(c, now=c.valid_until + REASONABLY_LIVE_S + 1)


def test_signatures_are_checked_before_the_time() -> None:
    c = signed_by([(AUTHS[0], "sha256")])
    with pytest.raises(ConsensusSignatureError):
        verify(c, now=0)


# -- properties -------------------------------------------------------------------------------


@given(st.binary(max_size=2048))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_raise_only_directory_errors(data: bytes) -> None:
    try:
        parse_consensus(b"network-status-version 3 microdesc\n" + data)
    except DirectoryError:
        pass
    try:
        parse_consensus(data)
    except DirectoryError:
        pass


SIGNED_END = DOC.index(b"directory-signature ") + len(b"directory-signature ")


@given(st.integers(0, len(DOC) - 1), st.integers(1, 255))
@settings(max_examples=150, deadline=None)
def test_no_change_to_the_signed_bytes_verifies(offset: int, flip: int) -> None:
    doc = bytearray(DOC)
    doc[offset] ^= flip
    try:
        verified = verify(parse_consensus(bytes(doc)))
    except DirectoryError:
        return
    assert offset >= SIGNED_END  # only the signature items can change and still verify
    assert verified.consensus.routers == parse_consensus(DOC).routers


def test_the_line_memo_changes_nothing_but_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = parse_consensus(DOC)
    assert shared.routers[0].flags is shared.routers[1].flags
    monkeypatch.setattr(routerstatus, "MAX_MEMO_ENTRIES", 0)
    unshared = parse_consensus(DOC)
    assert unshared.routers == shared.routers
    assert unshared.routers[0].flags is not unshared.routers[1].flags
    bad = mutate(b"s Fast Running Stable Valid\nv", b"s Fast Running Stable Valid Bogus\nv")
    with pytest.raises(ConsensusError, match="not in known-flags"):
        parse_consensus(bad)


def test_verifies_with_parsed_key_certificates_and_dir_authority_lines() -> None:
    """The pieces as the fetcher joins them: DirAuthority lines give the v3idents, key
    certificates parsed by tor.keycert give the signing keys."""
    auths = [
        nd.FakeAuthority(f"gencert{i}", dirauth.rsa_key(2048, i), dirauth.rsa_key(1024, i))
        for i in range(3)
    ]
    lines = [dirauth.authority_line(a.identity, nickname=a.nickname) for a in auths]
    ids = [parse_dir_authority(line).v3ident for line in lines]
    certs = [
        parse_key_certificate(
            dirauth.make_key_certificate(
                a.identity, a.signing, published=NOW - 86400, expires=NOW + 86400
            )
        )
        for a in auths
    ]
    entries = [nd.router_entry(0, MICROS[0].digest)]
    body = nd.consensus_body(entries, authority_list=auths)
    c = parse_consensus(nd.sign_consensus(body, [(a, "sha256") for a in auths[:2]]))
    assert missing_certificates(c, ids, certs[2:]) == [
        (a.v3ident, a.signing_key_digest) for a in sorted(auths[:2], key=lambda a: a.v3ident)
    ]
    assert verify_consensus(c, ids, certs, NOW).signed_by == frozenset(ids[:2])
    with pytest.raises(ConsensusSignatureError, match=r"gencert2 .*: no signature"):
        verify_consensus(c, ids, certs[:1], NOW)


# -- the consensus captured from the private network's tor 0.4.9 (tests/data/dir) -----------

CAPTURED_IDS = [bytes.fromhex(a["v3ident"]) for a in dir_capture.CAPTURE["authorities"]]
CAPTURED_CERTS = parse_key_certificates(dir_capture.KEYS_ALL)


def test_captured_consensus_parses_byte_exact() -> None:
    c = parse_consensus(dir_capture.CONSENSUS)
    assert c.consensus_method == 35 and c.voting_delay == (2, 2)
    assert c.fresh_until - c.valid_after == 10 and c.valid_until - c.valid_after == 20
    assert "Sybil" in c.known_flags and "StaleDesc" in c.known_flags
    assert [s.nickname for s in c.dir_sources] == ["auth2", "auth1", "auth0"]
    assert {s.identity for s in c.dir_sources} == set(CAPTURED_IDS)
    names = {r.nickname for r in c.routers}
    assert names == {r["nickname"] for r in dir_capture.CAPTURE["relays"]}
    assert [nd.b64(r.microdesc_digest) for r in c.routers] == dir_capture.m_digests(
        dir_capture.CONSENSUS
    )
    assert c.signed_digests == {"sha256": dir_capture.signed_digest(dir_capture.CONSENSUS)}
    exits = {r.nickname for r in c.routers if "Exit" in r.flags}
    assert exits == {r["nickname"] for r in dir_capture.CAPTURE["relays"] if r["is_exit"]}
    assert c.bandwidth_weights["Wgg"] + c.bandwidth_weights["Wmg"] == 10000


def test_captured_consensus_verifies_three_of_three() -> None:
    c = parse_consensus(dir_capture.CONSENSUS)
    assert missing_certificates(c, CAPTURED_IDS, CAPTURED_CERTS) == []
    verified = verify_consensus(c, CAPTURED_IDS, CAPTURED_CERTS, dir_capture.CAPTURED_AT)
    assert verified.signed_by == frozenset(CAPTURED_IDS)


def test_captured_consensus_refused_under_other_authorities() -> None:
    """The e2e case "wrong v3ident": the configured authorities never signed it."""
    c = parse_consensus(dir_capture.CONSENSUS)
    with pytest.raises(ConsensusSignatureError, match="0 of 3") as info:
        verify_consensus(c, IDS, CERTS, dir_capture.CAPTURED_AT)
    assert set(info.value.failures.values()) == {"no signature"}
    with pytest.raises(ConsensusSignatureError, match="1 of 3"):
        verify_consensus(c, [*CAPTURED_IDS[:1], *IDS[:2]], CAPTURED_CERTS, dir_capture.CAPTURED_AT)


def test_captured_consensus_with_a_changed_router_byte_verifies_nowhere() -> None:
    doc = mutate(b"\ns Exit Fast Guard", b"\ns Exit Fast Guard Authority", dir_capture.CONSENSUS)
    with pytest.raises(ConsensusSignatureError, match="0 of 3"):
        verify_consensus(
            parse_consensus(doc), CAPTURED_IDS, CAPTURED_CERTS, dir_capture.CAPTURED_AT
        )
