"""The size bounds of tor.dirmgr's answers, at and one byte past each bound, for each encoding
(parse_dir_response's ``max_body``), and their fit to the live network's sizes."""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Callable

import pytest

from webtunnel_pt.errors import DirectoryError
from webtunnel_pt.tor import dirmgr
from webtunnel_pt.tor.consensus import MAX_CONSENSUS_BYTES
from webtunnel_pt.tor.directory import MAX_DIR_RESPONSE_BYTES, parse_dir_response
from webtunnel_pt.tor.keycert import MAX_KEY_CERTIFICATES_BYTES

MiB = 1024 * 1024
#: The live network's documents (2026): microdesc consensus ~2.9 MB, all microdescriptors of
#: ~8,000 relays ~3.5 MiB, 500 of them ~250 KiB; 9 authority certificates ~25 KiB.
LIVE_CONSENSUS = 2_900_000
LIVE_MICRODESCS = 3_700_000
LIVE_BATCH = 260_000
LIVE_CERTIFICATES = 26_000

Encoder = Callable[[bytes], bytes]
ENCODINGS: list[tuple[str, Encoder]] = [
    ("identity", lambda b: b),
    ("deflate", zlib.compress),
    ("x-tor-lzma", lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE)),
]


def answer(body: bytes, encoding: str) -> bytes:
    return f"HTTP/1.0 200 OK\r\nContent-Encoding: {encoding}\r\n\r\n".encode() + body


def test_bounds_fit_the_live_network_with_headroom() -> None:
    assert dirmgr.MAX_CONSENSUS_ANSWER_BYTES == MAX_CONSENSUS_BYTES == 16 * MiB
    assert dirmgr.MAX_CONSENSUS_ANSWER_BYTES > 5 * LIVE_CONSENSUS
    assert dirmgr.MAX_MICRODESC_ANSWER_BYTES == 4 * MiB
    assert dirmgr.MAX_MICRODESC_ANSWER_BYTES > LIVE_MICRODESCS > 10 * LIVE_BATCH
    assert dirmgr.MAX_MICRODESC_TOTAL_BYTES >= 4 * LIVE_MICRODESCS
    assert dirmgr.MAX_KEYS_ANSWER_BYTES == MAX_KEY_CERTIFICATES_BYTES > 30 * LIVE_CERTIFICATES
    # The consensus no longer gets the generic 4 MiB, which a growing network would outgrow.
    assert dirmgr.MAX_CONSENSUS_ANSWER_BYTES > MAX_DIR_RESPONSE_BYTES


@pytest.mark.parametrize(("encoding", "encode"), ENCODINGS)
def test_a_consensus_answer_at_its_bound_is_accepted(encoding: str, encode: Encoder) -> None:
    bound = dirmgr.MAX_CONSENSUS_ANSWER_BYTES
    body = parse_dir_response(answer(encode(bytes(bound)), encoding), bound).body
    assert len(body) == bound
    with pytest.raises(DirectoryError, match=f"exceeds {bound} bytes"):
        parse_dir_response(answer(encode(bytes(bound + 1)), encoding), bound)


@pytest.mark.parametrize(("encoding", "encode"), ENCODINGS)
def test_a_consensus_past_the_old_generic_bound_decodes(encoding: str, encode: Encoder) -> None:
    """A 5 MiB consensus (a network ~1.7x today's) passes its own bound, not the default."""
    big = bytes(5 * MiB)
    raw = answer(encode(big), encoding)
    assert len(parse_dir_response(raw, dirmgr.MAX_CONSENSUS_ANSWER_BYTES).body) == len(big)
    with pytest.raises(DirectoryError, match="exceeds"):
        parse_dir_response(raw)


@pytest.mark.parametrize(("encoding", "encode"), ENCODINGS)
def test_a_microdesc_batch_past_its_bound_is_refused(encoding: str, encode: Encoder) -> None:
    bound = dirmgr.MAX_MICRODESC_ANSWER_BYTES
    assert len(parse_dir_response(answer(encode(bytes(bound)), encoding), bound).body) == bound
    with pytest.raises(DirectoryError, match=f"exceeds {bound} bytes"):
        parse_dir_response(answer(encode(bytes(bound + 1)), encoding), bound)


def test_a_bomb_stops_one_byte_past_the_bound() -> None:
    """64 MiB of zeros compress to ~64 KiB; decoding stops at bound + 1, not at 64 MiB."""
    bound = dirmgr.MAX_KEYS_ANSWER_BYTES
    bomb = zlib.compress(bytes(64 * MiB))
    with pytest.raises(DirectoryError, match=f"exceeds {bound} bytes"):
        parse_dir_response(answer(bomb, "deflate"), bound)


def test_an_error_answer_is_not_decoded() -> None:
    raw = b"HTTP/1.0 404 Not found\r\nContent-Encoding: deflate\r\n\r\nnot deflate"
    assert parse_dir_response(raw, 4).status == 404
