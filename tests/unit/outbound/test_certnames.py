"""outbound.certnames: a certificate's subjectAltName against a host (RFC 6125 §6, RFC 9110
§4.3.4), as getpeercert() reports it; no common-name fallback."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import TlsError
from webtunnel_pt.outbound.certnames import check_certificate_name, name_matches


def dns(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple(("DNS", name) for name in names)


@pytest.mark.parametrize(
    ("name", "san", "expected"),
    [
        # exact, case and trailing dots
        ("bridge.example", dns("bridge.example"), True),
        ("Bridge.EXAMPLE", dns("bridge.example"), True),
        ("bridge.example", dns("BRIDGE.Example"), True),
        ("bridge.example.", dns("bridge.example"), True),
        ("bridge.example", dns("bridge.example."), True),
        ("bridge.example", dns("other.example", "bridge.example"), True),
        ("bridge.example", dns("bridge.example.org"), False),
        ("bridge.example", dns("example"), False),
        # wildcards: one whole left-most label
        ("a.example.com", dns("*.example.com"), True),
        ("A.Example.Com", dns("*.EXAMPLE.com"), True),
        ("example.com", dns("*.example.com"), False),
        ("a.b.example.com", dns("*.example.com"), False),  # not two labels
        (".example.com", dns("*.example.com"), False),
        ("a.example.com", dns("a.*.com"), False),  # not left-most
        ("foo.example.com", dns("f*.example.com"), False),  # partial
        ("foo.example.com", dns("*o.example.com"), False),
        ("a.com", dns("*.com"), False),  # too broad
        ("a.example.com", dns("*"), False),
        ("a.example.com", dns("**.example.com"), False),
        # IDNA: the certificate holds A-labels; a U-label name is compared in A-label form
        ("xn--bcher-kva.example", dns("xn--bcher-kva.example"), True),
        ("b\u00fccher.example", dns("xn--bcher-kva.example"), True),
        ("B\u00dcCHER.example", dns("xn--bcher-kva.example"), True),
        ("xn--bcher-kva.example", dns("*.example"), False),  # *.example: one label too few
        ("xn--bcher-kva.example.org", dns("*.example.org"), True),
        ("bucher.example", dns("b\u00fccher.example"), False),  # not an IA5String entry
        # IP addresses: against IP Address entries only, as addresses
        ("192.0.2.1", (("IP Address", "192.0.2.1"),), True),
        ("2001:db8::1", (("IP Address", "2001:DB8:0:0:0:0:0:1\n"),), True),  # stdlib's format
        ("2001:db8::1", (("IP Address", "2001:db8::2"),), False),
        ("192.0.2.1", dns("192.0.2.1"), False),  # an IP in a DNS entry is not an IP SAN
        ("192.0.2.1", dns("*.0.2.1"), False),
        ("bridge.example", (("IP Address", "192.0.2.1"),), False),
        ("192.0.2.1", (("IP Address", "::ffff:192.0.2.1"),), False),
        # other kinds never match
        ("bridge.example", (("URI", "https://bridge.example/"),), False),
        ("bridge.example", (("email", "bridge.example"),), False),
        # nothing to match
        ("bridge.example", (), False),
        ("", dns("bridge.example"), False),
    ],
)
def test_name_matches(name: str, san: tuple[tuple[str, str], ...], expected: bool) -> None:
    assert name_matches(name, san) is expected


def test_check_accepts_a_matching_certificate() -> None:
    check_certificate_name("a.example.com", {"subjectAltName": dns("x.example", "*.example.com")})


def test_no_san_is_refused_even_with_a_matching_common_name() -> None:
    cert = {"subject": ((("commonName", "bridge.example"),),)}
    with pytest.raises(TlsError, match="no subjectAltName"):
        check_certificate_name("bridge.example", cert)
    with pytest.raises(TlsError, match="no subjectAltName"):
        check_certificate_name("bridge.example", None)


def test_mismatch_says_what_the_certificate_names() -> None:
    with pytest.raises(TlsError) as info:
        check_certificate_name("bridge.example", {"subjectAltName": dns("front.example")})
    assert str(info.value) == (
        "TLS certificate is not valid for bridge.example (it names front.example)"
    )


def test_long_san_lists_are_shortened_in_the_message() -> None:
    names = dns(*(f"n{i}.example" for i in range(20)))
    with pytest.raises(TlsError) as info:
        check_certificate_name("bridge.example", {"subjectAltName": names})
    assert str(info.value).endswith("n7.example, ...)")
