"""The front ends with the real built-in client on the private Tor network of tests/e2e (real
tor relays and authorities, nginx in front of the WebTunnel server): ``fetch`` byte for byte,
curl through the SOCKS front configured by a tor user's torrc (``-f``), and failing closed on
wrong authorities and a wrong bridge fingerprint. Marked e2e: it brings up its own network
(about a minute); it could share the e2e session stack if moved under tests/e2e.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Page, Stack, missing_binaries, running_stack, serving_page
from tests.integration.front.harness import run
from webtunnel_pt.front.commands import add_fetch_arguments
from webtunnel_pt.front.exit_codes import ExitStatus
from webtunnel_pt.front.fetch import fetch
from webtunnel_pt.front.http_get import parse_url
from webtunnel_pt.front.options import front_options
from webtunnel_pt.front.session import StopSignal, load_options, register_secrets
from webtunnel_pt.front.socks_front import add_arguments as add_socks_arguments
from webtunnel_pt.front.socks_front import serve
from webtunnel_pt.logs import Redactor

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH (apt-get install tor nginx-light)")
    with running_stack(tmp_path_factory.mktemp("front-e2e")) as running:
        yield running


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with serving_page() as serving:
        yield serving


@pytest.fixture(autouse=True)
def environment(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.ca_pem))  # nginx's test certificate
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the default state dir


def _fetch_words(
    stack: Stack, *, bridge: str | None = None, authorities: list[str] | None = None
) -> list[str]:
    words = [
        "--bridge",
        bridge or stack.bridge_line(),
        "--no-distinct-subnets",
        "--allow-internal-addresses",
    ]
    for line in authorities if authorities is not None else stack.network.dir_authority_lines:
        words += ["--dir-authority", line]
    return words


async def _fetch(words: list[str], url: str) -> tuple[int, bytes, str]:
    parser = argparse.ArgumentParser()
    add_fetch_arguments(parser)
    args = parser.parse_args([*words, url])
    redactor = Redactor()
    options = front_options(args)
    register_secrets(options, redactor)
    out, err = io.BytesIO(), io.StringIO()
    status = await fetch(options, parse_url(url), redactor, output=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_fetch_gets_the_page_byte_for_byte(stack: Stack, page: Page, tmp_path: Path) -> None:
    status, body, err = run(_fetch(_fetch_words(stack), page.url))
    assert (status, body) == (ExitStatus.OK, page.body), err
    assert (tmp_path / "cache" / "webtunnel-pt").is_dir()  # the default state directory
    assert "Bootstrapped 100% (done): Done" in err.splitlines()
    assert stack.secret_path not in err and stack.network.bridge_fingerprint not in err


def test_wrong_authorities_fail_closed_with_the_directory_status(stack: Stack, page: Page) -> None:
    wrong = [
        re.sub(r"v3ident=[0-9A-F]{40}", "v3ident=" + f"{i:X}" * 40, line)
        for i, line in enumerate(stack.network.dir_authority_lines, 1)
    ]
    status, body, err = run(_fetch(_fetch_words(stack, authorities=wrong), page.url))
    assert (status, body) == (ExitStatus.DIRECTORY_NOT_VERIFIED, b""), err
    assert "bootstrap failed" in err


def test_wrong_fingerprint_fails_with_the_bootstrap_status(stack: Stack, page: Page) -> None:
    bridge = stack.network.bridge_line(stack.url(), fingerprint="AB" * 20)
    status, body, err = run(_fetch(_fetch_words(stack, bridge=bridge), page.url))
    assert (status, body) == (ExitStatus.BOOTSTRAP_FAILED, b""), err


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_through_the_socks_front_set_up_by_a_torrc(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    torrc = tmp_path / "torrc"
    lines = [
        "UseBridges 1",
        "ClientTransportPlugin webtunnel exec /usr/bin/webtunnel-pt",
        f"Bridge {stack.bridge_line()}",
        "SocksPort auto",
        "EnforceDistinctSubnets 0",
        "ClientRejectInternalAddresses 0",
        f"DataDirectory {tmp_path / 'data'}",
        *(f"DirAuthority {line}" for line in stack.network.dir_authority_lines),
    ]
    torrc.write_text("\n".join(lines) + "\n")
    parser = argparse.ArgumentParser()
    add_socks_arguments(parser)
    options = load_options(parser.parse_args(["-f", str(torrc)]))

    async def main() -> None:
        stop = StopSignal()
        ready: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        out, err = io.StringIO(), io.StringIO()
        task = asyncio.create_task(
            serve(options, Redactor(), stop=stop, out=out, err=err, on_ready=ready.set_result)
        )
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        assert ready.done(), err.getvalue()
        port = ready.result()[1]
        proc = await asyncio.create_subprocess_exec(
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            "60",
            "--socks5-hostname",
            f"127.0.0.1:{port}",
            page.url + "big",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        body, curl_err = await proc.communicate()
        stop.set("test done")
        assert await task == 0
        assert proc.returncode == 0, curl_err
        assert body == page.big_body
        assert (tmp_path / "data").is_dir()  # DataDirectory became the state directory

    run(main())
