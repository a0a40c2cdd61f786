"""front/internal.py: tor's ClientRejectInternalAddresses set, and the two stricter additions."""

from __future__ import annotations

import pytest

from webtunnel_pt.front.internal import internal_reason, is_internal


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("0.0.0.0", "unspecified address (0.0.0.0/8)"),
        ("0.1.2.3", "unspecified address (0.0.0.0/8)"),
        ("10.0.0.1", "private address (10.0.0.0/8)"),
        ("127.0.0.1", "loopback address (127.0.0.0/8)"),
        ("127.255.255.254", "loopback address (127.0.0.0/8)"),
        ("169.254.1.1", "link-local address (169.254.0.0/16)"),
        ("172.16.0.1", "private address (172.16.0.0/12)"),
        ("172.31.255.255", "private address (172.16.0.0/12)"),
        ("192.168.1.1", "private address (192.168.0.0/16)"),
        ("::", "loopback or unspecified address (::/127)"),
        ("::1", "loopback or unspecified address (::/127)"),
        ("[::1]", "loopback or unspecified address (::/127)"),
        ("fc00::1", "unique local address (fc00::/7)"),
        ("fdff::1", "unique local address (fc00::/7)"),
        ("fe80::1", "link-local address (fe80::/10)"),
        ("fec0::1", "site-local address (fec0::/10)"),
        ("::ffff:10.1.2.3", "private address (10.0.0.0/8)"),
        ("localhost", "local host name"),
        ("LocalHost.", "local host name"),
        ("local", "local host name"),
        ("printer.local", "local host name"),
        ("app.localhost", "local host name"),  # stricter than tor (RFC 6761 §6.3)
        ("127.1", "loopback address (127.0.0.0/8)"),  # stricter than tor: inet_aton forms
        ("2130706433", "loopback address (127.0.0.0/8)"),
        ("0x7f.1", "loopback address (127.0.0.0/8)"),
        ("012.1", "private address (10.0.0.0/8)"),
    ],
)
def test_internal(host: str, reason: str) -> None:
    assert internal_reason(host) == reason


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "93.184.216.34",
        "172.32.0.1",
        "192.169.0.1",
        "100.64.0.1",  # CGNAT: not internal for tor either
        "224.0.0.1",  # multicast: not internal for tor either
        "2001:db8::1",
        "::ffff:8.8.8.8",
        "localhost.example.com",
        "notlocal",
        "1example.com",
        "256.1.1.1.1",
        "99999999999",
    ],
)
def test_not_internal(host: str) -> None:
    assert not is_internal(host)
