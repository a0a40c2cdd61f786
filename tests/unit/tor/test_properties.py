"""Hypothesis properties for the built-in mode's parsers: arbitrary bytes from a relay raise
nothing but the package's own errors, and mutations of a real CERTS cell never verify."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.link_capture import (
    CAPTURED_AT,
    CERTS_CELL,
    DESCRIPTOR_BYTES,
    FINGERPRINT,
    TLS_LEAF_DER,
    relay_identity,
)
from webtunnel_pt.errors import WebtunnelError
from webtunnel_pt.tor import cells, certs, directory
from webtunnel_pt.tor.link_handshake import ClientHandshake

#: Everything the RSA router-signature covers (the Ed25519 one covers all but its own value).
RSA_SIGNED_END = DESCRIPTOR_BYTES.index(b"\nrouter-signature\n") + len(b"\nrouter-signature\n")
IDENTITY = relay_identity()


def used_cert_offsets(payload: bytes) -> list[int]:
    """Offsets of the bytes of the certificates a client verifies (types 2, 4, 5, 7 of
    tor-spec §4.2: type byte, length and body); other entries (e.g. type 1) are ignored."""
    offsets, pos = [], 1
    for _ in range(payload[0]):
        cert_type, length = payload[pos], int.from_bytes(payload[pos + 1 : pos + 3], "big")
        end = pos + 3 + length
        if cert_type in (2, 4, 5, 7):
            offsets.extend(range(pos, end))
        pos = end
    return offsets


USED_OFFSETS = used_cert_offsets(CERTS_CELL)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_own_errors(call, *args) -> None:
    try:
        call(*args)
    except WebtunnelError:
        pass


@PROPERTY
@given(st.binary(max_size=2048))
def test_payload_decoders_raise_only_own_errors(data: bytes) -> None:
    for decode in (
        cells.decode_versions,
        cells.decode_netinfo,
        cells.decode_destroy,
        cells.decode_relay_payload,
        certs.parse_certs_cell,
        certs.parse_ed25519_cert,
        certs.parse_rsa_cross_cert,
        directory.parse_dir_response,
    ):
        only_own_errors(decode, data)


def parse_and_check(raw: bytes | str) -> None:
    descriptor = directory.parse_server_descriptor(raw)
    directory.check_descriptor_identity(descriptor, IDENTITY, now=CAPTURED_AT)


@PROPERTY
@given(st.text(max_size=2048))
def test_descriptor_parser_raises_only_own_errors(text: str) -> None:
    only_own_errors(directory.parse_server_descriptor, text)
    only_own_errors(parse_and_check, text)
    only_own_errors(parse_and_check, text.encode("utf-8", "surrogatepass"))


@PROPERTY
@given(st.integers(min_value=0, max_value=RSA_SIGNED_END - 1), st.integers(1, 255))
def test_any_flipped_byte_of_a_signed_descriptor_fails(index: int, mask: int) -> None:
    mutated = bytearray(DESCRIPTOR_BYTES)
    mutated[index] ^= mask
    try:
        parse_and_check(bytes(mutated))
    except WebtunnelError:
        return
    raise AssertionError(f"a descriptor with byte {index} changed still verified")


@PROPERTY
@given(st.binary(max_size=4096))
def test_link_handshake_fed_arbitrary_bytes(data: bytes) -> None:
    handshake = ClientHandshake(
        tls_leaf_der=TLS_LEAF_DER, expected_fingerprint=FINGERPRINT, clock=lambda: CAPTURED_AT
    )
    handshake.data_to_send()
    try:
        handshake.receive_data(data)
        event = handshake.next_event()
    except WebtunnelError:
        return
    assert event is None  # random bytes never open a verified link


@PROPERTY
@given(st.sampled_from(USED_OFFSETS), st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_of_a_verified_cert_fails_verification(index: int, mask: int) -> None:
    mutated = bytearray(CERTS_CELL)
    mutated[index] ^= mask
    try:
        certs.verify_certs(
            certs.parse_certs_cell(bytes(mutated)),
            tls_leaf_der=TLS_LEAF_DER,
            expected_fingerprint=FINGERPRINT,
            now=CAPTURED_AT,
        )
    except WebtunnelError:
        return
    raise AssertionError(f"a CERTS cell with byte {index} changed still verified")
