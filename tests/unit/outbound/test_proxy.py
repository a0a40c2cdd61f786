"""outbound.proxy: the handshake chosen for each TOR_PT_PROXY scheme."""

from __future__ import annotations

import pytest

from webtunnel_pt.outbound.http_connect import HttpConnectClientHandshake
from webtunnel_pt.outbound.proxy import client_handshake
from webtunnel_pt.outbound.proxy_uri import parse_proxy_uri
from webtunnel_pt.socks.client import Socks4aClientHandshake, Socks5ClientHandshake

GREETING_NO_AUTH = b"\x05\x01\x00"
GREETING_AUTH = b"\x05\x02\x00\x02"


# -- factory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "kind", "first_bytes"),
    [
        ("socks5://127.0.0.1:1080", Socks5ClientHandshake, GREETING_NO_AUTH),
        ("socks5://u:p@127.0.0.1:1080", Socks5ClientHandshake, GREETING_AUTH),
        ("socks4a://127.0.0.1:1080", Socks4aClientHandshake, b"\x04\x01\x01\xbb"),
        ("http://127.0.0.1:3128", HttpConnectClientHandshake, b"CONNECT bridge.test:443 "),
    ],
)
def test_client_handshake_factory(uri: str, kind: type, first_bytes: bytes) -> None:
    hs = client_handshake(parse_proxy_uri(uri), "bridge.test", 443)
    assert isinstance(hs, kind)
    assert hs.data_to_send().startswith(first_bytes)
