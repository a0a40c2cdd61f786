"""``fetch`` (front/fetch.py) against loopback HTTP and HTTPS servers through the fake TorClient
of fake_client.py: a test double over loopback TCP, allowed here because these tests are about
the front end; the real client is tested in tests/integration/tor and the chain in tests/e2e.
HTTPS is checked against a test CA given through SSL_CERT_FILE, as a user would."""

from __future__ import annotations

import argparse
import io
import ssl
from pathlib import Path

import pytest
import trustme

from tests.integration.front.fake_client import FakeNetwork
from tests.integration.front.harness import options, run
from tests.integration.front.servers import http_server
from tests.support.certs import Pki
from tests.unit.front.vectors import BRIDGE, FINGERPRINT, SECRET_PATH
from webtunnel_pt.errors import (
    CircuitBuildFailed,
    CircuitDestroyed,
    ConsensusSignatureError,
    IdentityMismatch,
    StreamRefused,
)
from webtunnel_pt.front import fetch as fetch_module
from webtunnel_pt.front.exit_codes import ExitStatus
from webtunnel_pt.front.fetch import fetch
from webtunnel_pt.front.http_get import parse_url
from webtunnel_pt.logs import Redactor
from webtunnel_pt.tor.cells import EndReason

PAGE = bytes(range(256)) * 300  # binary, 76800 bytes: checked byte for byte


async def _fetch(
    network: FakeNetwork,
    url: str,
    *extra: str,
    head: bool = False,
    redactor: Redactor | None = None,
) -> tuple[int, bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    status = await fetch(
        options(*extra, listen=False),
        parse_url(url),
        redactor or Redactor(),
        head=head,
        output=out,
        err=err,
        factory=network.factory,
    )
    assert all(c.closed for c in network.clients)
    return status, out.getvalue(), err.getvalue()


def test_http_get_body_status_line_progress_and_timings() -> None:
    network = FakeNetwork(routes={"web.test": "127.0.0.1"})

    async def main() -> None:
        async with http_server({"/page": PAGE}) as port:
            status, body, err = await _fetch(network, f"http://web.test:{port}/page")
        assert status == ExitStatus.OK
        assert body == PAGE
        lines = err.splitlines()
        assert lines[0] == "Bootstrapped 10% (conn): Connecting to the bridge"
        assert "Bootstrapped 100% (done): Done" in lines
        assert "HTTP/1.1 200 OK" in lines
        assert lines[-1].startswith("timings: bootstrap ")
        assert lines[-1].endswith(f"; {len(PAGE)} body bytes")
        assert network.opened == [("web.test", port, None)]  # the name went to the exit

    run(main())


def test_head_writes_no_body() -> None:
    network = FakeNetwork(routes={"web.test": "127.0.0.1"})

    async def main() -> None:
        async with http_server({"/page": PAGE}) as port:
            status, body, err = await _fetch(network, f"http://web.test:{port}/page", head=True)
        assert (status, body) == (ExitStatus.OK, b"")
        assert "HTTP/1.1 200 OK" in err.splitlines()

    run(main())


def test_http_errors_and_redirects_are_not_followed() -> None:
    network = FakeNetwork(routes={"web.test": "127.0.0.1"})

    async def main() -> None:
        async with http_server({}) as port:
            status, body, err = await _fetch(network, f"http://web.test:{port}/missing")
            assert (status, body) == (ExitStatus.HTTP_ERROR, b"no such page")
            assert "HTTP/1.1 404 Not Found" in err.splitlines()
            status, body, err = await _fetch(network, f"http://web.test:{port}/moved")
            assert status == ExitStatus.HTTP_ERROR
            assert "redirect to http://elsewhere.test/ not followed" in err.splitlines()

    run(main())


def test_https_validated_with_ssl_cert_file(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    network = FakeNetwork(routes={"bridge.test": "127.0.0.1"})
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))

    async def main() -> None:
        async with http_server({"/": PAGE}, pki.server_context) as port:
            status, body, err = await _fetch(network, f"https://bridge.test:{port}/")
        assert (status, body) == (ExitStatus.OK, PAGE), err
        assert ", TLS " in err.splitlines()[-1]

    run(main())


def test_https_refuses_an_untrusted_or_wrong_name_certificate(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = FakeNetwork(routes={"bridge.test": "127.0.0.1", "other.test": "127.0.0.1"})
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    untrusted = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("bridge.test").configure_cert(untrusted)

    async def main() -> None:
        async with http_server({"/": PAGE}, untrusted) as port:
            status, body, err = await _fetch(network, f"https://bridge.test:{port}/")
            assert (status, body) == (ExitStatus.TLS_FAILED, b"")
            assert "TLS with bridge.test failed" in err
        async with http_server({"/": PAGE}, pki.server_context) as port:
            status, _, err = await _fetch(network, f"https://other.test:{port}/")
            assert status == ExitStatus.TLS_FAILED
            assert "other.test" in err

    run(main())


@pytest.mark.parametrize(
    ("network", "status"),
    [
        (
            FakeNetwork(bootstrap_error=IdentityMismatch("wrong relay", expected="a", actual="b")),
            ExitStatus.BOOTSTRAP_FAILED,
        ),
        (
            FakeNetwork(
                bootstrap_error=ConsensusSignatureError(
                    "too few signatures", valid=0, needed=2, failures={}
                )
            ),
            ExitStatus.DIRECTORY_NOT_VERIFIED,
        ),
        (
            FakeNetwork(bootstrap_error=CircuitBuildFailed("no circuit", attempts=3)),
            ExitStatus.CIRCUIT_FAILED,
        ),
        (FakeNetwork(failures={"web.test": CircuitDestroyed(8)}), ExitStatus.CIRCUIT_FAILED),
        (
            FakeNetwork(failures={"web.test": StreamRefused(EndReason.EXITPOLICY)}),
            ExitStatus.STREAM_REFUSED,
        ),
    ],
)
def test_failures_have_distinct_statuses(network: FakeNetwork, status: ExitStatus) -> None:
    async def main() -> None:
        got, body, _ = await _fetch(network, "http://web.test:80/")
        assert (got, body) == (status, b"")

    run(main())


def test_internal_destination_refused_before_bootstrap_unless_allowed() -> None:
    async def main() -> None:
        network = FakeNetwork()
        status, _, err = await _fetch(network, "http://127.0.0.1:1/")
        assert status == ExitStatus.STREAM_REFUSED
        assert "internal destination" in err and network.clients == []
        async with http_server({"/": b"ok"}) as port:
            status, body, _ = await _fetch(
                FakeNetwork(), f"http://127.0.0.1:{port}/", "--allow-internal-addresses"
            )
        assert (status, body) == (ExitStatus.OK, b"ok")

    run(main())


def test_cut_response_is_bad_response() -> None:
    import asyncio

    async def main() -> None:
        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(cut, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            status, body, _ = await _fetch(
                FakeNetwork(routes={"web.test": "127.0.0.1"}), f"http://web.test:{port}/"
            )
        assert (status, body) == (ExitStatus.BAD_RESPONSE, b"only this")

    run(main())


def test_secrets_stay_out_of_stderr() -> None:
    redactor = Redactor()
    redactor.add_bridge(f"https://bridge.example/{SECRET_PATH}", f"/{SECRET_PATH}", FINGERPRINT)
    network = FakeNetwork(
        bootstrap_error=IdentityMismatch(f"relay is not {FINGERPRINT}", expected="x", actual="y")
    )

    async def main() -> None:
        _, _, err = await _fetch(network, "http://web.test/", redactor=redactor)
        assert FINGERPRINT not in err and "[scrubbed]" in err

    run(main())


def _args(*words: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fetch_module.add_arguments(parser)
    return parser.parse_args(list(words))


def test_run_configuration_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert fetch_module.run(_args("http://x.test/"), Redactor()) == ExitStatus.CONFIG
    assert "no bridge given" in capsys.readouterr().err
    assert fetch_module.run(_args("--bridge", BRIDGE, "ftp://x/"), Redactor()) == 1
    assert "only http:// and https://" in capsys.readouterr().err
    torrc = tmp_path / "torrc"
    torrc.write_text("EnforceDistinctSubnets maybe\n")
    assert fetch_module.run(_args("-f", str(torrc), "http://x.test/"), Redactor()) == 1
    assert "torrc line 1: EnforceDistinctSubnets takes 0 or 1" in capsys.readouterr().err
    missing = tmp_path / "nope"
    assert fetch_module.run(_args("-f", str(missing), "http://x.test/"), Redactor()) == 1
    assert "cannot read torrc" in capsys.readouterr().err


class _CutReader:
    """A Tor stream reader whose circuit is destroyed after the first bytes."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def read(self, n: int = -1) -> bytes:
        if self.first:
            data, self.first = self.first, b""
            return data
        raise CircuitDestroyed(8)


class _NullWriter:
    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_stream_destroyed_mid_transfer_is_a_bad_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    network = FakeNetwork()
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"

    async def open_connection(*args: object, **kwargs: object) -> tuple[object, object]:
        return _CutReader(first), _NullWriter()

    async def main() -> None:
        def factory(options: object, on_progress: object) -> object:
            client = network.factory(options, on_progress)  # type: ignore[arg-type]
            monkeypatch.setattr(client, "open_connection", open_connection)
            return client

        out, err = io.BytesIO(), io.StringIO()
        status = await fetch(
            options(listen=False),
            parse_url("http://web.test/"),
            Redactor(),
            output=out,
            err=err,
            factory=factory,  # type: ignore[arg-type]
        )
        assert (status, out.getvalue()) == (ExitStatus.BAD_RESPONSE, b"partial")
        assert "transfer failed: circuit destroyed" in err.getvalue()

    run(main())
