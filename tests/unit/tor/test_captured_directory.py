"""The directory documents captured from the private network's tor 0.4.9 (tests/data/dir) are
one consistent set: checked here with hashlib, base64 and a raw RSA public operation only, not
with the project's parsers, so parser tests can trust them byte for byte."""

from __future__ import annotations

import base64
import calendar
import lzma
import re
import time
import zlib

import pytest

from tests.support import dir_capture as cap

#: An .lzma ("LZMA alone") header: properties 0x5D, a 2^23-byte dictionary, size unknown.
LZMA_ALONE_HEADER = b"\x5d\x00\x00\x80\x00" + b"\xff" * 8


def header_time(consensus: bytes, keyword: str) -> int:
    match = re.search(rb"^" + keyword.encode() + rb" (\S+ \S+)$", consensus, re.MULTILINE)
    assert match is not None, keyword
    return calendar.timegm(time.strptime(match.group(1).decode(), "%Y-%m-%d %H:%M:%S"))


def test_capture_names_three_authorities_and_tor_049() -> None:
    assert cap.TOR_VERSION.startswith("Tor version 0.4.9.")
    assert len(cap.CAPTURE["authorities"]) == 3
    for auth, line in zip(cap.CAPTURE["authorities"], cap.AUTHORITY_LINES, strict=True):
        assert re.fullmatch(r"[0-9A-F]{40}", auth["v3ident"])
        assert re.fullmatch(r"[0-9A-F]{40}", auth["fingerprint"])
        assert line.startswith(f"DirAuthority {auth['nickname']} ")
        assert f"v3ident={auth['v3ident']}" in line.split()
        assert line.split()[-2:] == [auth["address"], auth["fingerprint"]]


def test_capture_time_is_inside_the_consensus_lifetime() -> None:
    valid_after = header_time(cap.CONSENSUS, "valid-after")
    fresh_until = header_time(cap.CONSENSUS, "fresh-until")
    valid_until = header_time(cap.CONSENSUS, "valid-until")
    assert valid_after < fresh_until < valid_until
    assert valid_after <= cap.CAPTURED_AT <= valid_until


def test_consensus_is_a_microdesc_consensus_listing_every_relay() -> None:
    assert cap.CONSENSUS.startswith(b"network-status-version 3 microdesc\nvote-status consensus\n")
    listed = re.findall(rb"^r (\S+) (\S+) ", cap.CONSENSUS, re.MULTILINE)
    by_nickname = {nick.decode(): ident for nick, ident in listed}
    assert len(listed) == len(cap.CAPTURE["relays"])
    for relay in cap.CAPTURE["relays"]:
        rsa_id = base64.b64decode(by_nickname[relay["nickname"]] + b"=")
        assert rsa_id.hex().upper() == relay["fingerprint"]


def test_dir_sources_are_the_capture_authorities() -> None:
    sources = re.findall(rb"^dir-source \S+ ([0-9A-F]{40}) ", cap.CONSENSUS, re.MULTILINE)
    assert sorted(s.decode() for s in sources) == sorted(cap.V3IDENTS)


def test_every_microdescriptor_hashes_to_an_m_line_and_every_m_line_is_served() -> None:
    microdescs = cap.split_microdescs(cap.MICRODESCS)
    assert b"".join(microdescs) == cap.MICRODESCS
    digests = [cap.microdesc_digest(md) for md in microdescs]
    assert sorted(digests) == sorted(cap.m_digests(cap.CONSENSUS))
    assert len(set(digests)) == len(cap.CAPTURE["relays"])


def test_microdescriptors_have_the_lines_a_client_needs() -> None:
    for md in cap.split_microdescs(cap.MICRODESCS):
        assert md.endswith(b"\n")
        ntor = re.findall(rb"^ntor-onion-key (\S+)$", md, re.MULTILINE)
        ed = re.findall(rb"^id ed25519 (\S+)$", md, re.MULTILINE)
        assert len(ntor) == 1 and len(ed) == 1
        for value in (ntor[0], ed[0]):  # consensus method >= 30: no '=' padding
            assert not value.endswith(b"=")
            assert len(base64.b64decode(value + b"=")) == 32


def test_capture_has_families_and_exit_summaries() -> None:
    """The capture script gives the exits a mutual family and a FamilyId: the parsers get
    real `family`, `family-ids` and `p` lines."""
    text = cap.MICRODESCS
    assert re.search(rb"^family( \$[0-9A-F]{40})+$", text, re.MULTILINE)
    assert re.search(rb"^family-ids ed25519:[A-Za-z0-9+/]{43}$", text, re.MULTILINE)
    assert re.search(rb"^p accept 1-65535$", text, re.MULTILINE)


def test_compressed_copies_are_the_same_consensus() -> None:
    assert zlib.decompress(cap.CONSENSUS_DEFLATE) == cap.CONSENSUS
    # x-tor-lzma is the legacy .lzma format, not the xz container (no b"\xfd7zXZ" magic)
    assert cap.CONSENSUS_LZMA.startswith(LZMA_ALONE_HEADER)
    assert lzma.decompress(cap.CONSENSUS_LZMA, format=lzma.FORMAT_ALONE) == cap.CONSENSUS
    with pytest.raises(lzma.LZMAError):
        lzma.decompress(cap.CONSENSUS_LZMA, format=lzma.FORMAT_XZ)
    assert cap.CAPTURE["headers"]["consensus-microdesc.lzma"]["Content-Encoding"] == "x-tor-lzma"


def test_every_signature_names_a_capture_authority_once() -> None:
    sigs = cap.signatures(cap.CONSENSUS)
    assert [s[1] for s in sigs] == sorted(cap.V3IDENTS)  # sorted by identity, as tor writes
    assert {s[0] for s in sigs} == {"sha256"}


@pytest.mark.parametrize("keys", [cap.KEYS_ALL, cap.KEYS_FP], ids=["keys-all", "keys-fp"])
def test_key_certificates_are_certified_by_the_authority_identities(keys: bytes) -> None:
    certs = cap.split_certificates(keys)
    idents = []
    for cert in certs:
        identity, _ = cert_keys = cap.certificate_keys(cert)
        ident = cap.key_digest(identity)
        assert f"fingerprint {ident}\n".encode() in cert
        digest, signature = cap.certificate_signed_digest(cert)
        assert cap.rsa_recover(identity, signature) == digest
        assert len(cert_keys) == 2
        idents.append(ident)
    assert sorted(idents) == sorted(cap.V3IDENTS)


def test_keys_fp_serves_the_same_certificates_as_keys_all() -> None:
    assert sorted(cap.split_certificates(cap.KEYS_FP)) == sorted(
        cap.split_certificates(cap.KEYS_ALL)
    )


def test_consensus_signatures_verify_under_the_certified_signing_keys() -> None:
    signing = {}
    for cert in cap.split_certificates(cap.KEYS_ALL):
        identity, signing_key = cap.certificate_keys(cert)
        signing[cap.key_digest(identity)] = signing_key
    digest = cap.signed_digest(cap.CONSENSUS)
    for _alg, ident, skd, signature in cap.signatures(cap.CONSENSUS):
        key = signing[ident]
        assert cap.key_digest(key) == skd
        assert cap.rsa_recover(key, signature) == digest


def test_a_changed_byte_breaks_every_signature() -> None:
    tampered = cap.CONSENSUS.replace(b"Bandwidth=", b"Bandwidth=9", 1)
    signing = {
        cap.key_digest(ident): key
        for ident, key in map(cap.certificate_keys, cap.split_certificates(cap.KEYS_ALL))
    }
    digest = cap.signed_digest(tampered)
    for _alg, ident, _skd, signature in cap.signatures(tampered):
        assert cap.rsa_recover(signing[ident], signature) != digest
