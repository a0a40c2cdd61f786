"""tor.microdesc and the port-policy summaries of tor.docfields (dir-spec §3.3, §3.4.1 ``p``):
microdescriptors kept only when they hash to a digest the consensus lists."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import dir_capture
from tests.support import netdocs as nd
from webtunnel_pt.errors import DirectoryError, MicrodescError, NetdocError
from webtunnel_pt.tor import microdesc as microdesc_mod
from webtunnel_pt.tor.docfields import REJECT_ALL, PortPolicy, parse_port_policy
from webtunnel_pt.tor.microdesc import parse_microdesc, parse_microdescs

# A microdescriptor as tor 0.4.9 serves one without the TAP key, written out byte for byte.
NTOR = bytes(range(32))
ED = bytes(range(32, 64))
TEXT = (
    b"onion-key\n"
    b"ntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n"
    b"a [2001:db8::7]:443\n"
    b"family $0123456789ABCDEF0123456789ABCDEF01234567 other\n"
    b"family-ids ed25519:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n"
    b"p accept 80,443,1000-2000\n"
    b"p6 reject 25\n"
    b"id rsa1024 AAECAwQFBgcICQoLDA0ODxAREhM\n"
    b"id ed25519 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n"
)
TEXT_DIGEST_B64 = base64.b64encode(hashlib.sha256(TEXT).digest()).decode().rstrip("=")


def test_parses_every_line_of_one_microdesc() -> None:
    md = parse_microdesc(TEXT)
    assert md.digest == hashlib.sha256(TEXT).digest()
    assert nd.b64(md.digest) == TEXT_DIGEST_B64
    assert md.ntor_onion_key == NTOR
    assert md.ed25519_id == ED
    assert md.ipv6 == (("2001:db8::7", 443),)
    assert md.family == {"$0123456789ABCDEF0123456789ABCDEF01234567", "other"}
    assert md.family_ids == {"ed25519:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"}
    assert md.policy == PortPolicy(True, ((80, 80), (443, 443), (1000, 2000)))
    assert md.policy6 == PortPolicy(False, ((25, 25),))


def test_defaults_reject_every_port() -> None:
    md = parse_microdesc(b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n")
    assert (md.policy, md.policy6, md.ed25519_id, md.family) == (
        REJECT_ALL,
        REJECT_ALL,
        None,
        frozenset(),
    )
    assert not md.policy.allows_port(80) and not md.policy.allows_any


def test_a_response_keeps_the_wanted_and_counts_the_rest() -> None:
    micros = [nd.microdesc(i, tap=i % 2 == 0) for i in range(5)]
    response = b"".join(m.text for m in micros)
    wanted = [micros[0].digest, micros[1].digest, micros[3].digest, hashlib.sha256().digest()]
    batch = parse_microdescs(response, wanted)
    assert [m.digest for m in batch.microdescs] == wanted[:3]
    assert batch.discarded == 2
    assert [m.ntor_onion_key for m in batch.microdescs] == [
        hashlib.sha256(b"ntor%d" % i).digest() for i in (0, 1, 3)
    ]


def test_each_digest_covers_exactly_its_own_bytes() -> None:
    micros = [nd.microdesc(i, tap=True) for i in range(3)]
    response = b"".join(m.text for m in micros)
    batch = parse_microdescs(response, {m.digest for m in micros})
    assert batch.discarded == 0 and len(batch.microdescs) == 3
    # The same relay's microdesc with one byte changed no longer matches its m line.
    tampered = micros[1].text.replace(b"accept 80,443", b"accept 80,444")
    batch = parse_microdescs(micros[0].text + tampered, {m.digest for m in micros})
    assert [m.digest for m in batch.microdescs] == [micros[0].digest]
    assert batch.discarded == 1


def test_without_tap_keys_each_bare_onion_key_line_starts_one() -> None:
    micros = [nd.microdesc(i, tap=False) for i in range(3)]
    batch = parse_microdescs(b"".join(m.text for m in micros), [m.digest for m in micros])
    assert len(batch.microdescs) == 3 and batch.discarded == 0


def test_repeats_and_malformed_wanted_ones_are_discarded() -> None:
    good = nd.microdesc(1)
    bad = nd.microdesc(2, extra="p reject 1\n")  # a second p line
    batch = parse_microdescs(good.text + bad.text + good.text, [good.digest, bad.digest])
    assert [m.digest for m in batch.microdescs] == [good.digest]
    assert batch.discarded == 2


@pytest.mark.parametrize(
    "text",
    [
        b"ntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",  # no onion-key line
        b"onion-key x\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\n",  # 29 bytes
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8 x\n",
        b"onion-key\nfamily x\n",  # no ntor-onion-key
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\np accept 0\n",
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\np accept 90,80\n",
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\np accept 80-90,85\n",
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\np allow 80\n",
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\np6 accept 65536\n",
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\na 1.2.3.4:5\n",
        b"onion-key\nntor-onion-key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\nid ed25519 AAAA\n",
        TEXT + b"id ed25519 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n",
        TEXT + b"family again\n",
        b"family x\n" + TEXT,  # bytes before the first start line
        TEXT + TEXT,  # two, not one
    ],
)
def test_malformed_microdescs_are_refused(text: bytes) -> None:
    with pytest.raises(MicrodescError):
        parse_microdesc(text)


def test_onion_key_object_must_be_an_rsa_key() -> None:
    text = nd.microdesc(1).text.replace(b"RSA PUBLIC KEY", b"ED25519 CERT")
    with pytest.raises(MicrodescError, match="RSA PUBLIC KEY"):
        parse_microdesc(text)


def test_a_response_must_start_with_a_microdesc_and_be_netdoc() -> None:
    with pytest.raises(MicrodescError, match="starts with"):
        parse_microdescs(b"p accept 80\n" + TEXT, [])
    with pytest.raises(NetdocError):
        parse_microdescs(TEXT + b"\x00\n", [])
    assert parse_microdescs(b"", []).microdescs == ()


def test_response_size_and_count_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(microdesc_mod, "MAX_MICRODESCS", 2)
    with pytest.raises(MicrodescError, match="more than 2"):
        parse_microdescs(TEXT * 3, [])
    monkeypatch.setattr(microdesc_mod, "MAX_MICRODESC_RESPONSE_BYTES", len(TEXT) - 1)
    with pytest.raises(MicrodescError, match="larger than"):
        parse_microdescs(TEXT, [])


@pytest.mark.parametrize(
    ("policy", "allowed", "refused"),
    [
        ("accept 80,443", [80, 443], [1, 79, 81, 442, 65535]),
        ("accept 1-65535", [1, 65535], []),
        ("reject 25,119,135-139", [1, 24, 26, 134, 140, 65535], [25, 119, 135, 139]),
        ("reject 1-65535", [], [1, 80, 65535]),
    ],
)
def test_port_policy_allows_port(policy: str, allowed: list[int], refused: list[int]) -> None:
    parsed = parse_port_policy(policy.split(), "p", MicrodescError)
    assert [parsed.allows_port(p) for p in allowed] == [True] * len(allowed)
    assert [parsed.allows_port(p) for p in refused] == [False] * len(refused)
    assert parsed.allows_any == bool(allowed)


@given(st.lists(st.integers(1, 65535), min_size=1, max_size=20, unique=True), st.booleans())
def test_port_policy_matches_a_set(ports: list[int], accept: bool) -> None:
    ports.sort()
    text = ("accept " if accept else "reject ") + ",".join(map(str, ports))
    parsed = parse_port_policy(text.split(), "p", MicrodescError)
    for probe in {*ports, *(p + 1 for p in ports if p < 65535), 1, 65535}:
        assert parsed.allows_port(probe) == ((probe in ports) == accept)


@given(st.binary(max_size=1024), st.lists(st.binary(min_size=32, max_size=32), max_size=3))
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_directory_errors(data: bytes, wanted: list[bytes]) -> None:
    for text in (data, b"onion-key\nntor-onion-key " + data, TEXT + data):
        try:
            batch = parse_microdescs(text, wanted)
        except DirectoryError:
            continue
        assert all(m.digest in wanted for m in batch.microdescs)
        try:
            parse_microdesc(text)
        except DirectoryError:
            pass


@given(st.integers(0, len(TEXT) - 1), st.integers(1, 255))
def test_any_changed_byte_is_discarded(offset: int, flip: int) -> None:
    text = bytearray(TEXT)
    text[offset] ^= flip
    try:
        batch = parse_microdescs(bytes(text), [hashlib.sha256(TEXT).digest()])
    except DirectoryError:
        return
    assert batch.microdescs == ()


# -- the microdescriptors captured from the private network's tor 0.4.9 (tests/data/dir) -----

CAPTURED_DIGESTS = [base64.b64decode(d + "=") for d in dir_capture.m_digests(dir_capture.CONSENSUS)]


def test_captured_microdescs_all_match_their_m_lines() -> None:
    batch = parse_microdescs(dir_capture.MICRODESCS, CAPTURED_DIGESTS)
    assert batch.discarded == 0
    assert sorted(m.digest for m in batch.microdescs) == sorted(CAPTURED_DIGESTS)
    # Each one's bytes, as the independent splitter of tests/support cuts them, parse alone.
    texts = dir_capture.split_microdescs(dir_capture.MICRODESCS)
    assert [parse_microdesc(t).digest for t in texts] == [m.digest for m in batch.microdescs]
    exits = [m for m in batch.microdescs if m.policy.accept]
    assert exits and all(m.policy.ranges == ((1, 65535),) for m in exits)
    assert all(len(m.family_ids) == 1 for m in exits)
    assert all(m.ed25519_id is not None for m in batch.microdescs)


def test_captured_microdescs_one_changed_byte_discards_only_that_one() -> None:
    texts = dir_capture.split_microdescs(dir_capture.MICRODESCS)
    changed = texts[1].replace(b"ntor-onion-key ", b"ntor-onion-key  ")
    batch = parse_microdescs(b"".join([texts[0], changed, *texts[2:]]), CAPTURED_DIGESTS)
    assert batch.discarded == 1 and len(batch.microdescs) == len(texts) - 1


def test_bytes_between_microdescs_belong_to_the_one_before_as_in_tor() -> None:
    """tor hashes from an ``onion-key`` line to the next one: a blank line served after a
    microdescriptor changes its digest, so it no longer matches and is discarded."""
    first, second = nd.microdesc(1), nd.microdesc(2)
    batch = parse_microdescs(first.text + b"\n" + second.text, [first.digest, second.digest])
    assert [m.digest for m in batch.microdescs] == [second.digest]
    assert batch.discarded == 1
    padded = hashlib.sha256(first.text + b"\n").digest()
    batch = parse_microdescs(first.text + b"\n" + second.text, [padded])
    assert [m.digest for m in batch.microdescs] == [padded]


def test_sharing_parsed_lines_changes_nothing_but_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    micros = [nd.microdesc(i, family="$AA b", policy="accept 80,443") for i in range(3)]
    response = b"".join(m.text for m in micros)
    digests = [m.digest for m in micros]
    shared = parse_microdescs(response, digests).microdescs
    assert shared[0].policy is shared[2].policy and shared[0].family is shared[1].family
    monkeypatch.setattr(microdesc_mod, "MAX_SHARED_VALUES", 0)
    alone = parse_microdescs(response, digests).microdescs
    assert alone == shared and alone[0].policy is not alone[2].policy
    too_long = nd.microdesc(9, family="x" * 129)
    assert parse_microdescs(too_long.text, [too_long.digest]).discarded == 1
