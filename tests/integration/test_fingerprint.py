"""The outer ClientHello, measured (docs/fingerprint.md), and each ``utls`` profile end to end.

- default profile: recorded next to Debian's ``curl --http1.1`` in the same run; JA4 (all three
  parts) and JA3 must be identical;
- browser profiles: compared with the browser hellos committed in ``tests/data/hellos`` (recorded
  by ``tests/support/record_hellos.py``): same cipher suites in order, groups, key shares,
  versions and signature algorithms, and exactly the documented extension differences;
- every profile through the PT subprocess against the scripted web server: echo, bulk data,
  certificate and host-name checks, ``cert=`` pinning; unknown names refused.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import shutil
import socket
import ssl
from collections.abc import Iterator

import pytest
import trustme
from cryptography.hazmat.bindings.openssl.binding import Binding

from tests.support.clienthello import GREASE, HelloRecorder, describe, diff, ja3, ja4
from tests.support.pt_process import PtProcess
from tests.support.record_hellos import load, record_curl, record_pt
from tests.support.secrets import SecretPathServer, secret_path
from tests.support.socks_client import recv_exactly, socks_connect
from tests.support.upgrade_server import ScriptedWebServer
from webtunnel_pt.webtunnel.outer_tls import chain_pin

BUNDLED_OPENSSL = Binding.lib.OpenSSL_version_num()
needs_pyopenssl = pytest.mark.skipif(
    importlib.util.find_spec("OpenSSL") is None, reason="browser profiles need pyOpenSSL"
)

#: Extensions the browser sends and the profile cannot (docs/fingerprint.md says why).
MISSING = {
    "chrome": {27, 0xCA34},  # compress_certificate, trust-anchor ids
    "firefox": {27, 28, 34},  # compress_certificate, record_size_limit, delegated_credentials
}
#: Signature algorithms the browser offers and the profile leaves out (SHA-1).
MISSING_SIGALGS = {"chrome": set(), "firefox": {0x0203, 0x0201}}
BROWSER_DATA = {"chrome": "chromium", "firefox": "firefox"}
PROFILE_NAMES = {"chrome": "hellochrome_auto", "firefox": "HelloFirefox_Auto"}


def _no_grease(values: list[int]) -> list[int]:
    return [v for v in values if v not in GREASE]


# -- the default profile against curl ------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by .ci/run")
def test_default_profile_has_the_ja4_of_curl_http11() -> None:
    with HelloRecorder() as recorder:
        curl, _ = record_curl(recorder)
        ours = record_pt(recorder, None)
    assert ja4(ours) == ja4(curl), diff(ours, curl)
    assert ja3(ours) == ja3(curl), diff(ours, curl)
    # The one intended difference: TLS >= 1.2 only.
    assert set(diff(ours, curl)) <= {"versions", "padding"}
    assert ours.alpn == ["http/1.1"]


@pytest.mark.parametrize("utls", [None, "none", "NONE"])
def test_default_profile_never_offers_h2(utls: str | None) -> None:
    with HelloRecorder() as recorder:
        hello = record_pt(recorder, utls)
    assert hello.alpn == ["http/1.1"]
    assert hello.server_name == "bridge.test"


# -- browser profiles against the committed browser hellos ---------------------------------------


@needs_pyopenssl
@pytest.mark.parametrize("profile", ["chrome", "firefox"])
def test_browser_profile_matches_the_recorded_browser(profile: str) -> None:
    browser, record = load(BROWSER_DATA[profile])
    with HelloRecorder() as recorder:
        ours = record_pt(recorder, PROFILE_NAMES[profile])
    detail = diff(ours, browser)
    # JA4 part b: the same cipher suites; and the same order too.
    assert ja4(ours).split("_")[1] == record["ja4"].split("_")[1], detail
    assert ours.cipher_suites == _no_grease(browser.cipher_suites)
    assert ours.supported_versions == _no_grease(browser.supported_versions)
    assert ours.ec_point_formats == browser.ec_point_formats
    expected_sigalgs = [
        s for s in _no_grease(browser.signature_algorithms) if s not in MISSING_SIGALGS[profile]
    ]
    if BUNDLED_OPENSSL >= 0x30500000:
        assert ours.supported_groups == _no_grease(browser.supported_groups)
        assert ours.key_share_groups == _no_grease(browser.key_share_groups)
        assert ours.signature_algorithms == expected_sigalgs
    # Extensions: exactly the documented ones missing, nothing extra.
    theirs = set(_no_grease(browser.extensions))
    mine = set(ours.extensions)
    expected_missing = set(MISSING[profile])
    if BUNDLED_OPENSSL < 0x40000000:
        expected_missing.add(0xFE0D)  # GREASE ECH needs OpenSSL 4.0
    assert theirs - mine == expected_missing, describe(ours)
    assert mine - theirs == set(), describe(ours)
    # Never h2: the tunnel is an HTTP/1.1 upgrade.
    assert ours.alpn == ["http/1.1"]
    assert browser.alpn == ["h2", "http/1.1"]
    assert ours.server_name == "bridge.test"


@needs_pyopenssl
def test_lyrebird_aliases_give_the_same_hello() -> None:
    with HelloRecorder() as recorder:
        chrome = {
            ja4(record_pt(recorder, u))
            for u in ("hellochrome_100", "HelloEdge_Auto", "hellochrome_auto")
        }
        firefox = {ja4(record_pt(recorder, u)) for u in ("hellofirefox_102", "HelloFirefox_Auto")}
    assert len(chrome) == 1 and len(firefox) == 1 and chrome != firefox


# -- every profile end to end through the PT ------------------------------------------------------

PROFILES = ["none", "hellochrome_auto", "HelloFirefox_Auto", "hellofirefox_102", "HELLOCHROME_100"]


def _url(server: ScriptedWebServer, path: str) -> str:
    """A URL behind a registered secret segment, which the session check looks for."""
    return f"https://127.0.0.1:{server.port}{secret_path(path)}"


@pytest.mark.parametrize(
    "utls", [u if u == "none" else pytest.param(u, marks=needs_pyopenssl) for u in PROFILES]
)
def test_profile_echo_end_to_end(pt: PtProcess, tls_server: ScriptedWebServer, utls: str) -> None:
    rep, sock = socks_connect(pt.socks_port(), {"url": _url(tls_server, "/echo"), "utls": utls})
    assert rep == 0
    payload = bytes(range(256)) * 4096  # 1 MiB, several TLS records each way
    with sock:
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload


@needs_pyopenssl
@pytest.mark.parametrize("utls", ["hellochrome_auto", "hellofirefox_auto"])
def test_profile_delivers_bytes_sent_with_the_101(
    pt: PtProcess, tls_server: ScriptedWebServer, utls: str
) -> None:
    rep, sock = socks_connect(pt.socks_port(), {"url": _url(tls_server, "/early"), "utls": utls})
    assert rep == 0
    with sock:
        assert recv_exactly(sock, len(b"EARLY-PAYLOAD")) == b"EARLY-PAYLOAD"


@needs_pyopenssl
@pytest.mark.parametrize("utls", ["hellochrome_auto", "hellofirefox_auto"])
def test_profile_refuses_an_untrusted_certificate(
    pt: PtProcess, untrusted_server: ScriptedWebServer, utls: str
) -> None:
    before = len(untrusted_server.request_heads)
    rep, _ = socks_connect(pt.socks_port(), {"url": _url(untrusted_server, "/echo"), "utls": utls})
    assert rep == 1
    pt.wait_for_log("not accepted: unable to get local issuer certificate")
    assert len(untrusted_server.request_heads) == before


@needs_pyopenssl
@pytest.mark.parametrize("utls", ["hellochrome_auto", "hellofirefox_auto"])
def test_profile_checks_the_host_name(
    pt: PtProcess, tls_server: ScriptedWebServer, utls: str
) -> None:
    args = {
        "url": f"https://wrong.test:{tls_server.port}{secret_path('/echo')}",
        "addr": f"127.0.0.1:{tls_server.port}",
        "utls": utls,
    }
    rep, _ = socks_connect(pt.socks_port(), args)
    assert rep == 1
    pt.wait_for_log("wrong.test")


def _server_pin(server: ScriptedWebServer) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", server.port)) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        chain = [c.public_bytes(2) for c in tls._sslobj.get_unverified_chain()]  # type: ignore[union-attr]
    return base64.b64encode(chain_pin(chain)).decode()


@pytest.fixture(scope="module")
def self_signed_server() -> Iterator[ScriptedWebServer]:
    """A server only a cert= pin can accept (its CA is trusted nowhere); its own, so the
    requests it gets do not show up in the shared ``untrusted_server``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
    server = SecretPathServer(ctx)
    server.start()
    yield server
    server.stop()


@needs_pyopenssl
@pytest.mark.parametrize("utls", ["hellochrome_auto", "hellofirefox_auto"])
def test_profile_with_cert_pin(
    pt: PtProcess, self_signed_server: ScriptedWebServer, utls: str
) -> None:
    pin = _server_pin(self_signed_server)
    args = {"url": _url(self_signed_server, "/echo"), "utls": utls, "cert": pin}
    rep, sock = socks_connect(pt.socks_port(), args)
    assert rep == 0
    with sock:
        sock.sendall(b"pinned")
        assert recv_exactly(sock, 6) == b"pinned"
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    rep, _ = socks_connect(pt.socks_port(), {**args, "cert": wrong})
    assert rep == 1
    pt.wait_for_log("cert= pin")


@pytest.mark.parametrize("utls", ["hellogolang", "hellofirefox_1", "chrome"])
def test_unknown_utls_name_is_refused(
    pt: PtProcess, tls_server: ScriptedWebServer, utls: str
) -> None:
    before = len(tls_server.request_heads)
    rep, _ = socks_connect(pt.socks_port(), {"url": _url(tls_server, "/echo"), "utls": utls})
    assert rep != 0
    pt.wait_for_log(f"utls='{utls}' is not a known ClientHello template")
    assert len(tls_server.request_heads) == before


def test_unreproduced_lyrebird_name_falls_back_with_a_notice(
    pt: PtProcess, tls_server: ScriptedWebServer
) -> None:
    args = {"url": _url(tls_server, "/echo"), "utls": "HelloRandomizedNoALPN"}
    rep, sock = socks_connect(pt.socks_port(), args)
    assert rep == 0
    with sock:
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"
    pt.wait_for_log("utls=HelloRandomizedNoALPN is not reproduced here")
