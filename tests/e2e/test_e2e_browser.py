"""A real browser through ``webtunnel-pt socks``: Debian's ``firefox-esr`` (what Tor Browser is
built on) runs headless with a fresh profile whose only way out is the SOCKS front (SOCKS5 with
``network.proxy.socks_remote_dns``; first-run pages, telemetry, updates, captive-portal and
connectivity checks, safe browsing and prefetching off), loads a page served on the private
network, and saves a screenshot. The test checks what it rendered (the page's big coloured
block, decoded from the PNG here: no imaging library needed) and that the page was fetched by
the network's exit relay, so the load went through the three hops and not straight to the
page. firefox-esr runs here, so chromium is not used. Skipped, naming it, when firefox-esr is
not installed (tools/system-deps.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .ports import LOOPBACK
from .procs import inet_sockets
from .stack import Stack
from .test_e2e_fronts import client_words, socks_front
from .test_e2e_probe import assert_no_secrets

pytestmark = pytest.mark.e2e

FIREFOX = "firefox-esr"
BROWSER_TIMEOUT_S = 120.0
WINDOW = (480, 360)
BLOCK_RGB = (0x1E, 0x90, 0xFF)  # the page's block: "dodgerblue"
TITLE = "webtunnel-pt e2e browser page"
PAGE_HTML = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{TITLE}</title>
<style>html,body{{margin:0;background:#fff}}
#block{{width:100%;height:100vh;background:rgb{BLOCK_RGB}}}</style></head>
<body><div id="block"></div></body></html>
""".encode()

#: The profile: the SOCKS front is the only proxy, host names go to it unresolved, 127.0.0.1
#: (the page's host) is proxied too, and nothing of Firefox's own phones home.
PREFS: dict[str, object] = {
    "network.proxy.type": 1,
    "network.proxy.socks_version": 5,
    "network.proxy.socks_remote_dns": True,
    "network.proxy.allow_hijacking_localhost": True,
    "network.proxy.no_proxies_on": "",
    "network.proxy.failover_direct": False,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    "browser.ping-centre.telemetry": False,
    "browser.discovery.enabled": False,
    "browser.region.update.enabled": False,
    "browser.region.network.url": "",
    "browser.search.update": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.coverage.endpoint.base": "",
    "app.update.auto": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.blocklist.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "security.OCSP.enabled": 0,
    "security.remote_settings.crlite_filters.enabled": False,
    "geo.enabled": False,
    # Remote settings (firefox.settings.services.mozilla.com), push, new-tab sites.
    "services.settings.server": "data:,",
    "dom.push.enabled": False,
    "dom.push.connection.enabled": False,
    "browser.topsites.contile.enabled": False,
    "browser.newtabpage.activity-stream.default.sites": "",
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "extensions.pocket.enabled": False,
    "identity.fxaccounts.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "network.http.http3.enable": False,
}


def user_js(socks_port: int) -> str:
    prefs = {**PREFS, "network.proxy.socks": LOOPBACK, "network.proxy.socks_port": socks_port}
    return "".join(f"user_pref({_js(k)}, {_js(v)});\n" for k, v in prefs.items())


def _js(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- PNG, as much as a screenshot needs ----------------------------------------------------


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, bpp)
        rgb = bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3)
        rows.append(rgb)
        previous = line
    return width, height, rows


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        for i in range(len(line)):
            line[i] = (line[i] + prev[i]) & 0xFF
        return
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + a) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((a + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + pred) & 0xFF
        else:
            raise AssertionError(f"bad PNG filter {kind}")


def dominant_colour(rows: list[bytes]) -> tuple[tuple[int, int, int], float]:
    """The commonest pixel colour of the picture and the share of pixels it covers."""
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        counts.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    colour, count = counts.most_common(1)[0]
    return colour, count / sum(counts.values())


def test_decode_png_reads_a_known_picture() -> None:
    """The decoder against a picture written here: 2x2, one filter per row kind used."""
    pixels = [bytes([1, 2, 3, 4, 5, 6]), bytes([7, 8, 9, 10, 11, 12])]
    raw = (
        b"\x00" + pixels[0] + b"\x02" + bytes((b - a) & 0xFF for a, b in zip(*pixels, strict=True))
    )
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
    assert decode_png(png + chunk(b"IEND", b"")) == (2, 2, pixels)


# ---- the page, and who fetched it ----------------------------------------------------------


@dataclass
class BrowserPage:
    port: int
    exit_pids: list[int]
    #: For each GET /: whether the connection came from an exit relay's socket.
    from_exit: list[bool] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"


@contextmanager
def serving_browser_page(stack: Stack) -> Iterator[BrowserPage]:
    exits = [c.pid for c in stack.network.processes.children if c.name.startswith("exit")]
    served = BrowserPage(0, exits)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/":
                self.send_error(404)
                return
            peer_port = self.client_address[1]
            sockets = inet_sockets(served.exit_pids)
            served.from_exit.append(any(s.local[1] == peer_port for s in sockets))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE_HTML)))
            self.end_headers()
            self.wfile.write(PAGE_HTML)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="e2e-browser-page", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def screenshot(socks_port: int, url: str, work: Path) -> Path:
    profile, out = work / "profile", work / "screenshot.png"
    profile.mkdir(parents=True)
    (profile / "user.js").write_text(user_js(socks_port))
    # Release builds honour services.settings.server only with this set: without it Firefox
    # asks firefox.settings.services.mozilla.com for remote settings at start, through the
    # proxy, and the exit tries to resolve that name.
    env = dict(os.environ, HOME=str(work), MOZ_HEADLESS="1", MOZ_REMOTE_SETTINGS_DEVTOOLS="1")
    argv = [FIREFOX, "--headless", "--no-remote", "--profile", str(profile)]
    argv += ["--window-size", f"{WINDOW[0]},{WINDOW[1]}", "--screenshot", str(out), url]
    done = subprocess.run(
        argv, capture_output=True, env=env, timeout=BROWSER_TIMEOUT_S, check=False, cwd=work
    )
    log = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0 and out.is_file(), f"{FIREFOX} exited {done.returncode}:\n{log}"
    return out


@pytest.mark.skipif(shutil.which(FIREFOX) is None, reason=f"needs {FIREFOX} (apt-get install)")
def test_firefox_renders_a_page_through_the_socks_front(e2e_stack: Stack, tmp_path: Path) -> None:
    words = [*client_words(e2e_stack, state_dir=tmp_path / "state"), "--listen", f"{LOOPBACK}:0"]
    with serving_browser_page(e2e_stack) as page, socks_front(e2e_stack, tmp_path, words) as front:
        assert front.port is not None
        png = screenshot(front.port, page.url, tmp_path / "firefox")
    assert page.from_exit and all(page.from_exit), page.from_exit  # fetched by the exit relay
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == WINDOW
    colour, share = dominant_colour(rows)
    assert colour == BLOCK_RGB and share > 0.8, (colour, share)
    assert_no_secrets(e2e_stack, front.stderr())
