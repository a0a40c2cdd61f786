"""tests/support/fake_network.py: the synthetic network is signed and laid out like tor 0.4.9's.

Checked with the independent helpers of tests/support/dir_capture.py (hashlib, base64, a raw
RSA public operation), which test_captured_directory.py proves against real tor output, and
compared line by line with the captured documents."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import dir_capture as cap
from tests.support import fake_network as fake

N = 50


@pytest.fixture(scope="module")
def net() -> fake.FakeNetwork:
    return fake.make_network(N, seed=7)


def keywords(text: bytes) -> list[str]:
    """First word of each line, objects and their bodies left out."""
    words = []
    in_object = False
    for line in text.decode().splitlines():
        if line.startswith("-----BEGIN "):
            in_object = True
        elif line.startswith("-----END "):
            in_object = False
        elif not in_object:
            words.append(line.split(" ")[0])
    return words


def collapse(words: list[str]) -> list[str]:
    return [w for i, w in enumerate(words) if i == 0 or words[i - 1] != w]


def signing_keys(certificates: bytes) -> dict[str, rsa.RSAPublicKey]:
    keys = {}
    for cert in cap.split_certificates(certificates):
        identity, signing = cap.certificate_keys(cert)
        keys[cap.key_digest(identity)] = signing
    return keys


def verified_signers(consensus: bytes, certificates: bytes) -> list[str]:
    keys = signing_keys(certificates)
    digest = cap.signed_digest(consensus)
    good = []
    for alg, ident, skd, signature in cap.signatures(consensus):
        key = keys.get(ident)
        if alg == "sha256" and key and cap.key_digest(key) == skd:
            if cap.rsa_recover(key, signature) == digest:
                good.append(ident)
    return good


def test_every_authority_signature_verifies(net: fake.FakeNetwork) -> None:
    assert verified_signers(net.consensus, net.certificates) == sorted(
        a.v3ident for a in net.authorities
    )


def test_signature_block_is_laid_out_as_tor_writes_it(net: fake.FakeNetwork) -> None:
    tail = net.consensus[len(net.unsigned_consensus) :]
    blocks = re.findall(
        rb"directory-signature sha256 [0-9A-F]{40} [0-9A-F]{40}\n-----BEGIN SIGNATURE-----\n"
        rb"((?:[A-Za-z0-9+/=]{1,64}\n)+)-----END SIGNATURE-----\n",
        tail,
    )
    assert len(blocks) == 3
    assert all(len(base64.b64decode(b)) == fake.SIGNING_KEY_BITS // 8 for b in blocks)
    assert net.unsigned_consensus.endswith(b"\n") and tail.endswith(b"-----END SIGNATURE-----\n")


def test_only_the_chosen_signers_sign() -> None:
    net = fake.make_network(10, seed=3, n_authorities=3, signers=[0, 2])
    assert verified_signers(net.consensus, net.certificates) == sorted(
        [net.authorities[0].v3ident, net.authorities[2].v3ident]
    )
    assert len(net.certificates.split(b"dir-key-certificate-version")) == 4  # all 3 certified


def test_an_edited_document_fails_until_re_signed(net: fake.FakeNetwork) -> None:
    edited_body = net.unsigned_consensus.replace(b"circwindow=1000", b"circwindow=999")
    old_signatures = net.consensus[len(net.unsigned_consensus) :]
    assert verified_signers(edited_body + old_signatures, net.certificates) == []
    resigned = fake.sign_consensus(edited_body, net.authorities)
    assert len(verified_signers(resigned, net.certificates)) == 3


def test_key_certificates_are_certified_and_cross_certified(net: fake.FakeNetwork) -> None:
    certs = cap.split_certificates(net.certificates)
    assert len(certs) == len(net.authorities)
    for cert, auth in zip(certs, net.authorities, strict=True):
        identity, signing = cap.certificate_keys(cert)
        assert cap.key_digest(identity) == auth.v3ident
        digest, signature = cap.certificate_signed_digest(cert)
        assert cap.rsa_recover(identity, signature) == digest
        cross = re.search(
            rb"-----BEGIN ID SIGNATURE-----\n(.+?)-----END ID SIGNATURE-----", cert, re.S
        )
        assert cross is not None
        der = identity.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        assert cap.rsa_recover(signing, base64.b64decode(cross.group(1))) == (
            hashlib.sha1(der).digest()
        )
        assert (identity.key_size, signing.key_size) == (3072, 2048)


def test_key_certificate_keywords_match_tor_gencert(net: fake.FakeNetwork) -> None:
    real = cap.split_certificates(cap.KEYS_ALL)[0]
    assert keywords(net.authorities[0].certificate) == keywords(real)


def test_make_key_certificate_takes_other_dates() -> None:
    keys = fake.authority_keys(0)
    cert = fake.make_key_certificate(keys, published=0, expires=86400)
    assert b"dir-key-published 1970-01-01 00:00:00\n" in cert
    assert b"dir-key-expires 1970-01-02 00:00:00\n" in cert
    assert b"dir-address" not in cert
    digest, signature = cap.certificate_signed_digest(cert)
    assert cap.rsa_recover(keys.identity.public_key(), signature) == digest


def test_every_m_line_is_its_microdescriptor_digest(net: fake.FakeNetwork) -> None:
    microdescs = cap.split_microdescs(net.microdescs)
    assert len(microdescs) == N
    assert [cap.microdesc_digest(md) for md in microdescs] == cap.m_digests(net.consensus)
    for relay in net.relays:
        assert net.microdesc(relay.microdesc_digest) == relay.microdesc


def header_and_footer(consensus: bytes) -> tuple[list[str], list[str]]:
    words = keywords(consensus)
    return words[: words.index("r")], collapse(words[words.index("directory-footer") :])


def test_header_and_footer_keywords_follow_the_captured_consensus(
    net: fake.FakeNetwork,
) -> None:
    """Same keywords in the same order as tor 0.4.9 wrote; params and shared-rand lines,
    absent from the tiny private network, sit where tor puts them."""
    real_head, real_foot = header_and_footer(cap.CONSENSUS)
    head, foot = header_and_footer(net.consensus)
    extra = {"params", "shared-rand-previous-value", "shared-rand-current-value"}
    assert [w for w in head if w not in extra] == real_head
    assert head.index("params") == head.index("required-relay-protocols") + 1
    assert head.index("shared-rand-current-value") + 1 == head.index("dir-source")
    assert foot == real_foot == ["directory-footer", "bandwidth-weights", "directory-signature"]


def test_relay_entries_have_tors_line_order(net: fake.FakeNetwork) -> None:
    for consensus, count in ((cap.CONSENSUS, len(cap.CAPTURE["relays"])), (net.consensus, N)):
        body = consensus[: consensus.index(b"\ndirectory-footer\n") + 1]
        entries = body.split(b"\nr ")[1:]
        assert len(entries) == count
        for entry in entries:
            has_a = b"\na [" in entry
            expected = ["r", *(["a"] if has_a else []), "m", "s", "v", "pr", "w"]
            assert keywords(b"r " + entry) == expected
    assert any(b"\na [" in e for e in net.consensus.split(b"\nr "))


def test_microdescriptor_lines_in_tors_order(net: fake.FakeNetwork) -> None:
    order = ["onion-key", "ntor-onion-key", "family", "family-ids", "p", "p6", "id"]
    for text in (cap.MICRODESCS, net.microdescs):
        for md in cap.split_microdescs(text):
            words = keywords(md)
            assert words == sorted(words, key=order.index), words
    assert any(b"\nfamily-ids ed25519:" in md for md in cap.split_microdescs(net.microdescs))
    assert any(b"\np6 " in md for md in cap.split_microdescs(net.microdescs))


def test_tap_key_is_a_well_formed_1024_bit_rsa_key(net: fake.FakeNetwork) -> None:
    pem = re.search(
        rb"-----BEGIN RSA PUBLIC KEY-----\n.+?-----END RSA PUBLIC KEY-----\n",
        net.relays[0].microdesc,
        re.S,
    )
    assert pem is not None
    key = serialization.load_pem_public_key(pem.group(0))
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024


def test_without_tap_keys_a_microdescriptor_starts_with_a_bare_onion_key() -> None:
    net = fake.make_network(5, seed=1, tap_keys=False)
    for relay in net.relays:
        assert relay.microdesc.startswith(b"onion-key\nntor-onion-key ")
    assert len(cap.split_microdescs(net.microdescs)) == 5


def test_relays_are_sorted_and_well_formed(net: fake.FakeNetwork) -> None:
    assert [r.rsa_id for r in net.relays] == sorted(r.rsa_id for r in net.relays)
    known = set(fake.KNOWN_FLAGS.split())
    for relay in net.relays:
        assert re.fullmatch(r"[A-Za-z0-9]{1,19}", relay.nickname)
        assert list(relay.flags) == sorted(relay.flags) and set(relay.flags) <= known
        assert {"Running", "Valid"} <= set(relay.flags)
        assert ("Exit" in relay.flags) == (relay.policy is not None)
        if relay.family:
            assert f"${relay.fingerprint}" in relay.family
    authority_relays = [r for r in net.relays if "Authority" in r.flags]
    assert sorted(r.fingerprint for r in authority_relays) == sorted(
        a.fingerprint for a in net.authorities
    )


def test_dir_authority_lines_name_the_signers(net: fake.FakeNetwork) -> None:
    for line, auth in zip(net.dir_authority_lines, net.authorities, strict=True):
        assert line == (
            f"DirAuthority {auth.nickname} orport={auth.or_port} no-v2 "
            f"v3ident={auth.v3ident} 127.0.0.1:{auth.dir_port} {auth.fingerprint}"
        )
    sources = re.findall(rb"^dir-source \S+ ([0-9A-F]{40}) ", net.consensus, re.M)
    assert [s.decode() for s in sources] == sorted(a.v3ident for a in net.authorities)


def test_same_seed_same_document_other_seed_other_relays() -> None:
    a = fake.make_network(20, seed=11)
    b = fake.make_network(20, seed=11)
    c = fake.make_network(20, seed=12)
    assert a.unsigned_consensus == b.unsigned_consensus and a.microdescs == b.microdescs
    assert {r.rsa_id for r in a.relays} != {r.rsa_id for r in c.relays}


def test_times_and_sizes(net: fake.FakeNetwork) -> None:
    assert b"valid-after 2026-01-01 12:00:00\n" in net.consensus
    assert net.fresh_until - net.valid_after == 3600
    assert net.valid_until - net.valid_after == 3 * 3600
    # per relay as on the real network: 8,000 relays make a consensus and microdescriptors
    # of a few MB each
    per_relay_consensus = len(net.unsigned_consensus) / N
    per_relay_microdescs = len(net.microdescs) / N
    assert 250 < per_relay_consensus < 500
    assert 300 < per_relay_microdescs < 700


def test_directory_benchmark_runs_on_a_small_network() -> None:
    """bench/directory.py stays runnable: with the parsers it checks the view is complete;
    without them it reports which module is missing."""
    from bench import directory

    report = directory.run(relays=30, authorities=3, repeat=1, seed=5)
    assert report["consensus_bytes"] > 0 and report["microdescs_bytes"] > 0
    if "skipped" in report:
        assert "webtunnel_pt.tor." in report["skipped"]
    else:
        assert report["parse_consensus_s"] >= 0 and report["peak_alloc_mib"] >= 0
