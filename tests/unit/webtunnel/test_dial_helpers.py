"""dial and outer_tls: the pure helpers chain_pin (webtunnel-wire.md §4.3), is_public (§3 step 3), the bind
address per family and each TCP attempt's share of the dial's budget."""

from __future__ import annotations

import base64
import hashlib
import ipaddress

import pytest
import trustme

from webtunnel_pt.deadlines import Deadline
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args
from webtunnel_pt.webtunnel.dial import (
    DialOptions,
    _attempt_timeout,
    _bind_address,
    is_public,
)
from webtunnel_pt.webtunnel.outer_tls import chain_pin


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ssl_pem_to_der(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


def test_chain_pin_single_certificate():
    assert chain_pin([b"leaf"]) == sha256(b"leaf")


def test_chain_pin_three_certificates_leaf_first():
    leaf, intermediate, root = b"leaf-der", b"intermediate-der", b"root-der"
    expected = sha256(leaf)
    expected = sha256(expected + sha256(intermediate))
    expected = sha256(expected + sha256(root))
    assert chain_pin([leaf, intermediate, root]) == expected
    assert chain_pin([root, intermediate, leaf]) != expected  # order matters


def test_chain_pin_of_a_real_chain_is_a_valid_cert_argument():
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    server = intermediate.issue_cert("bridge.example")
    ders = [
        ssl_pem_to_der(blob.bytes()) for blob in (server.cert_chain_pems[0], intermediate.cert_pem)
    ]
    pin = chain_pin(ders)
    expected = sha256(sha256(ders[0]) + sha256(ders[1]))
    assert pin == expected
    # The same value written as the bridge's cert= argument is accepted as the pin.
    cfg = bridge_config_from_args(
        BridgeArgs([("url", "https://bridge.example/p"), ("cert", base64.b64encode(pin).decode())])
    )
    assert cfg.cert_pin == pin


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "127.8.9.10",
        "::1",
        "10.1.2.3",  # RFC 1918
        "172.16.0.1",
        "192.168.1.1",
        "fc00::1",  # unique local
        "fd12:3456::1",
        "169.254.1.1",  # link-local
        "fe80::1",
        "224.0.0.1",  # multicast
        "ff02::1",
        "0.0.0.0",  # unspecified
        "::",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "240.0.0.1",  # reserved
        "2001:db8::1",  # documentation: the synthetic bridge-line address range
    ],
)
def test_not_public(address):
    assert is_public(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public(address):
    assert is_public(ipaddress.ip_address(address)) is True


BIND = DialOptions(
    bind_v4=ipaddress.IPv4Address("198.51.100.7"), bind_v6=ipaddress.IPv6Address("2001:db8::7")
)


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("203.0.113.5", "198.51.100.7"),  # TOR_PT_OUTBOUND_BIND_ADDRESS_V4 for IPv4
        ("2001:db8:1::5", "2001:db8::7"),  # ..._V6 for IPv6
        ("127.0.0.1", None),  # pt-spec: ignored for loopback destinations
        ("127.3.2.1", None),
        ("::1", None),
    ],
)
def test_outbound_bind_address_per_family(destination, expected):
    assert _bind_address(ipaddress.ip_address(destination), BIND) == expected


def test_no_bind_address_when_tor_gave_none():
    assert _bind_address(ipaddress.ip_address("203.0.113.5"), DialOptions()) is None
    assert _bind_address(ipaddress.ip_address("2001:db8:1::5"), DialOptions()) is None


@pytest.mark.parametrize(
    "address", ["100.64.0.1", "100.127.255.254", "192.0.2.1", "198.18.0.1", "2001:db8::1"]
)
def test_shared_and_documentation_ranges_are_not_public(address):
    assert is_public(ipaddress.ip_address(address)) is False


def test_a_tcp_attempt_never_outlives_the_dial():
    """A connect attempt's own limit counts only while it is shorter than what is left; after
    that the dial's deadline ends the attempt (and reports the dial's timeout)."""
    now = [100.0]
    deadline = Deadline.after(30.0, clock=lambda: now[0])
    options = DialOptions(connect_timeout_s=10.0)
    assert _attempt_timeout(options, deadline) == 10.0
    now[0] += 25.0  # 5 s left
    assert _attempt_timeout(options, deadline) is None
    now[0] += 10.0  # spent
    assert _attempt_timeout(options, deadline) is None
