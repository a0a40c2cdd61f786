"""Bridge-line names as lyrebird 0.8 reads them, checked on what the server received: the SNI
(parsed from the raw ClientHello), the ``Host`` header, and which certificate name the client
verified (the server's certificate names bridge.test and 127.0.0.1 only, so a dial succeeds
only when the name it verifies is one of those, or a ``cert=`` pin replaces the check).

In-process dials over real loopback sockets, a test CA (trustme), the stdlib TLS path and the
pyOpenSSL browser-profile path; each test its own rotation registry (randomness pinned).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.certs import Pki
from tests.support.pt_process import PtProcess
from tests.support.socks_client import recv_exactly, socks_connect
from tests.support.vhost_server import Seen, VhostServer
from webtunnel_pt.errors import TlsError, UpgradeRejected, WebtunnelError
from webtunnel_pt.outbound import tls_profiles
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args
from webtunnel_pt.webtunnel.dial import DialOptions, Tunnel, dial_bridge
from webtunnel_pt.webtunnel.outer_tls import chain_pin
from webtunnel_pt.webtunnel.servernames import RotationRegistry

WAIT_S = 20.0
CERT_NAMES = ("bridge.test", "127.0.0.1")
PATH = "/D0CX0ykTaxzAgALpPd2hBMU6"
WRONG_PIN = base64.b64encode(bytes(32)).decode()

needs_pyopenssl = pytest.mark.skipif(
    importlib.util.find_spec("OpenSSL") is None, reason="browser profiles need pyOpenSSL"
)


def forget_tls_contexts() -> None:
    for name in dir(tls_profiles):
        cache = getattr(tls_profiles, name)
        if name.endswith("_CONTEXTS") and isinstance(cache, dict):
            cache.clear()


@pytest.fixture(autouse=True)
def trust_test_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    forget_tls_contexts()  # contexts read SSL_CERT_FILE when they are made
    yield
    forget_tls_contexts()


@dataclass
class Front:
    server: VhostServer
    pin: str  # cert= for the server's chain

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def front(pki: Pki) -> Iterator[Front]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf = pki.ca.issue_cert(*CERT_NAMES)
    leaf.configure_cert(ctx)
    chain = [ssl.PEM_cert_to_DER_cert(blob.bytes().decode()) for blob in leaf.cert_chain_pems]
    with VhostServer(ctx) as server:
        yield Front(server, base64.b64encode(chain_pin(chain)).decode())


async def _dial(args: dict[str, str], registry: RotationRegistry) -> Tunnel:
    config = bridge_config_from_args(BridgeArgs(args.items()))
    return await dial_bridge(config, DialOptions(timeout_s=WAIT_S, server_names=registry))


def dial_once(front: Front, registry: RotationRegistry | None = None, **args: str) -> Any:
    """Dial; echo a few bytes through the tunnel. Returns None, or the error raised."""

    async def main() -> WebtunnelError | None:
        try:
            fresh = RotationRegistry(choose=lambda n: 0)
            tunnel = await _dial(args, registry if registry is not None else fresh)
        except WebtunnelError as exc:
            return exc
        tunnel.writer.write(b"ping")
        assert await asyncio.wait_for(tunnel.reader.readexactly(4), WAIT_S) == b"ping"
        tunnel.writer.close()
        return None

    return asyncio.run(main())


def bridge(front: Front, host: str, **extra: str) -> dict[str, str]:
    url_host = f"[{host}]" if ":" in host else host
    return {
        "url": f"https://{url_host}:{front.port}{PATH}",
        "addr": f"127.0.0.1:{front.port}",
        **extra,
    }


@dataclass(frozen=True)
class Case:
    """One combination of url= host, servername=, utls-authority= and cert=, and what the
    server must see. ``sni`` None: no SNI (an IP literal is never sent as SNI, RFC 6066 §3)."""

    url_host: str
    args: dict[str, str]
    sni: str | None
    host: str
    fails: str | None = None  # a fragment of the TlsError, or None for success


CASES = {
    "url host only": Case("bridge.test", {}, "bridge.test", "bridge.test"),
    "url IP only": Case("127.0.0.1", {}, None, "127.0.0.1"),
    "servername is SNI, not Host": Case(
        "bridge.test",
        {"servername": "front.test"},
        "front.test",
        "bridge.test",
        fails="front.test",  # and the certificate is checked for it: not valid
    ),
    "servername the certificate names": Case(
        "front.test", {"servername": "bridge.test"}, "bridge.test", "front.test"
    ),
    "utls-authority verifies another name": Case(
        "bridge.test",
        {"servername": "front.test", "utls-authority": "bridge.test"},
        "front.test",
        "bridge.test",
    ),
    "utls-authority an IP address": Case(
        "bridge.test",
        {"servername": "front.test", "utls-authority": "127.0.0.1"},
        "front.test",
        "bridge.test",
    ),
    "utls-authority the certificate does not name": Case(
        "bridge.test",
        {"servername": "bridge.test", "utls-authority": "other.test"},
        "bridge.test",
        "bridge.test",
        fails="not valid for other.test",
    ),
    "utls-authority without servername": Case(
        "front.test", {"utls-authority": "bridge.test"}, "front.test", "front.test"
    ),
    "sni-imitation": Case(
        "bridge.test", {"sni-imitation": "front.test"}, "front.test", "bridge.test"
    ),
    "pin decides, no name check": Case(
        "bridge.test",
        {"servername": "front.test", "cert": "PIN"},
        "front.test",
        "bridge.test",
    ),
    "pin decides over utls-authority": Case(
        "bridge.test",
        {"servername": "front.test", "utls-authority": "other.test", "cert": "PIN"},
        "front.test",
        "bridge.test",
    ),
    "wrong pin fails even with a valid name": Case(
        "bridge.test",
        {"utls-authority": "bridge.test", "cert": WRONG_PIN},
        "bridge.test",
        "bridge.test",
        fails="cert= pin",
    ),
}


@pytest.mark.parametrize(
    "profile", ["none", pytest.param("hellochrome_auto", marks=needs_pyopenssl)]
)
@pytest.mark.parametrize("name", list(CASES))
def test_names_on_the_wire(front: Front, name: str, profile: str) -> None:
    case = CASES[name]
    args = {k: (front.pin if v == "PIN" else v) for k, v in case.args.items()}
    error = dial_once(front, **bridge(front, case.url_host, utls=profile, **args))
    (seen,) = front.server.wait_seen(1)
    assert len(front.server.seen) == 1
    assert seen.sni == case.sni
    if case.fails is None:
        assert error is None, f"{name}: {error!r}"
        assert seen == Seen(case.sni, case.host, PATH, accepted=True)
    else:
        assert isinstance(error, TlsError), repr(error)
        assert case.fails in str(error)
        assert seen.host is None  # no request after a refused certificate


def test_servername_list_rotates_after_concurrent_failures(front: Front) -> None:
    """a.test is refused by the server (421). Three dials that took a.test at once all fail;
    the rotation moves once, to b.test, which works: it does not skip b.test."""
    front.server.accept = lambda sni, host: sni != "a.test"
    registry = RotationRegistry(choose=lambda n: 0)
    args = bridge(
        front,
        "bridge.test",
        servername="a.test, b.test,c.test",
        **{"utls-authority": "bridge.test"},
    )

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(_dial(args, registry) for _ in range(3)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(r, UpgradeRejected) and r.status == 421 for r in results), results
    assert dial_once(front, registry, **args) is None
    seen = front.server.wait_seen(4)
    assert [s.sni for s in seen] == ["a.test"] * 3 + ["b.test"]
    assert {s.host for s in seen} == {"bridge.test"}  # Host never rotates


def test_tls_failure_rotates_and_tcp_failure_does_not(front: Front) -> None:
    """A certificate refused for the SNI moves the rotation (lyrebird: the handshake is part
    of its upgrade step); a TCP connect that fails sends no name and does not."""
    registry = RotationRegistry(choose=lambda n: 0)
    args = bridge(front, "bridge.test", servername="front.test,bridge.test")
    error = dial_once(front, registry, **args)
    assert isinstance(error, TlsError) and "front.test" in str(error)
    assert dial_once(front, registry, **args) is None
    assert [s.sni for s in front.server.wait_seen(2)] == ["front.test", "bridge.test"]

    dead = bridge(front, "bridge.test", servername="bridge.test,front.test")
    dead["addr"] = "127.0.0.1:1"  # nothing listens on port 1
    rotation = registry.rotation(("bridge.test", "front.test"))
    assert rotation.current() == "bridge.test"
    assert dial_once(front, registry, **dead) is not None
    assert rotation.current() == "bridge.test"


def test_single_servername_is_not_registered(front: Front) -> None:
    registry = RotationRegistry(choose=lambda n: 0)
    assert dial_once(front, registry, **bridge(front, "bridge.test")) is None
    assert len(registry) == 0


# -- the PT as tor runs it ----------------------------------------------------------------------


def test_managed_pt_sends_servername_as_sni_and_the_url_host_as_host(
    pt: PtProcess, front: Front
) -> None:
    """Through the SOCKS listener of a PT process (WEBTUNNEL_PT): same names on the wire."""
    args = bridge(
        front, "bridge.test", servername="front.test", **{"utls-authority": "bridge.test"}
    )
    rep, sock = socks_connect(pt.socks_port(), args)
    assert rep == 0
    with sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
    assert front.server.wait_seen(1) == [Seen("front.test", "bridge.test", PATH, accepted=True)]


def test_managed_pt_gives_one_utls_notice_per_name(pt: PtProcess, front: Front) -> None:
    """Three connections with the same approximated name, in two spellings: one notice."""
    for spelling in ("HelloIOS_13", "helloios_13", "HelloIOS_13"):
        rep, sock = socks_connect(pt.socks_port(), bridge(front, "bridge.test", utls=spelling))
        assert rep == 0
        with sock:
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
    front.server.wait_seen(3)
    pt.wait_for_log("utls=HelloIOS_13 is not reproduced here")
    notices = [
        line
        for line in pt.all_output().splitlines()
        if line.startswith("LOG ") and "utls=helloios_13 is not" in line.lower()
    ]
    assert len(notices) == 1, notices
