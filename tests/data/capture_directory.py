"""Capture directory documents from the e2e private Tor network (tor 0.4.9) on 127.0.0.1.

    python -m tests.data.capture_directory [--out tests/data/dir] [--middles 2] [--exits 2]

Starts the private network of the e2e suite (tests/e2e/network.py: 3 authorities made with
tor-gencert, relays, exits, a bridge; every tor binds and connects on 127.0.0.1 only, names only
the local DirAuthority lines and sets UseDefaultFallbackDirs 0), waits until one authority's
microdesc consensus lists every relay Running and Valid (and Exit on the exits), then fetches
over plain HTTP from that authority's DirPort on 127.0.0.1 and writes:

    consensus-microdesc        /tor/status-vote/current/consensus-microdesc, identity
    consensus-microdesc.z      the same path + ".z": deflate (a zlib stream) of the same document
    consensus-microdesc.lzma     the plain path with "Accept-Encoding: x-tor-lzma": tor answers
                               in the legacy .lzma ("LZMA alone") format, not xz
    keys-all                   /tor/keys/all: every authority's key certificate
    keys-fp                    /tor/keys/fp/<v3ident>+<v3ident>+...: the same, asked by v3ident
    microdescs                 /tor/micro/d/<d1>-<d2>-...: every microdescriptor the consensus
                               lists, in one response, as served
    capture.json               capture time (use it as "now" in tests: the documents expire
                               seconds after it), tor version, the authorities' DirAuthority
                               lines and parts, the relays, the HTTP response headers

All the compressed variants are checked to decompress to the uncompressed document, so one
capture is one consensus even though the network votes every 10 s.  The keys are throwaway:
they live in a temporary directory removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.e2e import network
from tests.e2e.network import Node, TorNetwork, consensus_flags, running_network
from tests.e2e.ports import LOOPBACK

DEFAULT_OUT = Path(__file__).resolve().parent / "dir"
CONSENSUS_PATH = "/tor/status-vote/current/consensus-microdesc"
KEYS_ALL_PATH = "/tor/keys/all"
MICRODESC_PATH = "/tor/micro/d/"
MAX_MICRODESCS_PER_REQUEST = 92  # tor-link.md §10: what tor asks for at most in one request
HTTP_TIMEOUT_S = 10.0
CAPTURE_TIMEOUT_S = 120.0  # after bring-up: a few 10 s voting rounds
RETRY_PAUSE_S = 1.0  # pacing between attempts while the authorities vote, not synchronisation
_M_LINE = re.compile(rb"^m (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Fetched:
    body: bytes
    headers: dict[str, str]


def _get(dir_port: int, path: str, accept_encoding: str | None = None) -> Fetched:
    request = urllib.request.Request(f"http://{LOOPBACK}:{dir_port}{path}")
    if accept_encoding is not None:
        request.add_header("Accept-Encoding", accept_encoding)
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        keep = ("Content-Type", "Content-Encoding", "Content-Length")
        headers = {k: v for k, v in response.headers.items() if k in keep}
        return Fetched(response.read(), headers)


def _missing(net: TorNetwork, consensus: bytes) -> list[str]:
    flags = consensus_flags(consensus.decode())
    missing = []
    for node in (*net.authorities, *net.relays):
        need = {"Running", "Valid", *(["Exit"] if node.is_exit else [])}
        if need - flags.get(node.nickname, set()):
            missing.append(node.nickname)
    return missing


def _try_capture(net: TorNetwork, dir_port: int) -> dict[str, Fetched] | str:
    """One attempt: every document of one consensus, or why this attempt failed."""
    try:
        plain = _get(dir_port, CONSENSUS_PATH)
        missing = _missing(net, plain.body)
        if missing:
            return f"the consensus lacks {', '.join(missing)}"
        deflated = _get(dir_port, CONSENSUS_PATH + ".z")
        lzma_alone = _get(dir_port, CONSENSUS_PATH, accept_encoding="x-tor-lzma")
        if zlib.decompress(deflated.body) != plain.body:
            return "a new consensus arrived between two fetches (.z)"
        if lzma.decompress(lzma_alone.body, format=lzma.FORMAT_ALONE) != plain.body:
            return "a new consensus arrived between two fetches (x-tor-lzma)"
        digests = [d.decode() for d in _M_LINE.findall(plain.body)]
        if len(digests) > MAX_MICRODESCS_PER_REQUEST:
            return f"{len(digests)} microdescriptors need more than one request"
        micro = _get(dir_port, MICRODESC_PATH + "-".join(digests))
        keys_all = _get(dir_port, KEYS_ALL_PATH)
        keys_fp = _get(dir_port, "/tor/keys/fp/" + "+".join(a.v3ident for a in net.authorities))
    except (urllib.error.URLError, OSError, zlib.error, lzma.LZMAError) as exc:
        return f"fetch failed: {exc}"
    return {
        "consensus-microdesc": plain,
        "consensus-microdesc.z": deflated,
        "consensus-microdesc.lzma": lzma_alone,
        "microdescs": micro,
        "keys-all": keys_all,
        "keys-fp": keys_fp,
    }


def _capture(net: TorNetwork) -> tuple[dict[str, Fetched], float]:
    dir_port = net.authorities[0].dir_port
    assert dir_port is not None
    deadline = time.monotonic() + CAPTURE_TIMEOUT_S
    while True:
        captured_at = time.time()
        result = _try_capture(net, dir_port)
        if not isinstance(result, str):
            return result, captured_at
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete capture after {CAPTURE_TIMEOUT_S:.0f}s: {result}")
        print(f"[capture] retrying: {result}", file=sys.stderr, flush=True)
        time.sleep(RETRY_PAUSE_S)


def _family_key(base_dir: Path) -> tuple[Path, str]:
    """A happy-family key (`tor --keygen-family`): its secret key file and its FamilyId."""
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "empty").write_text("")
    torrc = base_dir / "torrc.family"
    keygen_authority = (
        f"DirAuthority keygen orport=1 no-v2 v3ident={'0' * 40} {LOOPBACK}:1 {'0' * 40}"
    )
    torrc.write_text(
        "\n".join(
            [
                f"DataDirectory {base_dir / 'family-data'}",
                "UseDefaultFallbackDirs 0",
                keygen_authority,
                "SocksPort 0",
                "Log warn stderr",
            ]
        )
        + "\n"
    )
    stem = base_dir / "capture"
    argv = ["tor", "--defaults-torrc", str(base_dir / "empty"), "-f", str(torrc)]
    subprocess.run([*argv, "--keygen-family", str(stem)], capture_output=True, check=True)
    family_id = stem.with_suffix(".public_family_id").read_text().strip()
    return stem.with_suffix(".secret_family_key"), family_id


def _with_families(base_dir: Path) -> None:
    """Give the relays families, so the microdescriptors carry `family` and `family-ids`:
    the exits declare each other (MyFamily) and share a FamilyId; middle0 names middle1 in
    MyFamily without the favour being returned (a one-sided declaration)."""
    secret_key, family_id = _family_key(base_dir)
    plain_relay_torrc = network._relay_torrc

    def relay_torrc(net: TorNetwork, node: Node) -> list[str]:
        lines = plain_relay_torrc(net, node)
        if node.is_exit:
            others = [r.fingerprint for r in net.relays if r.is_exit and r is not node]
            shutil.copy(secret_key, node.data_dir / "keys" / secret_key.name)
            lines += [f"MyFamily {','.join(others)}", f"FamilyId {family_id}"]
        elif node.nickname == "middle0":
            lines += [f"MyFamily {r.fingerprint}" for r in net.relays if r.nickname == "middle1"]
        return lines

    network._relay_torrc = relay_torrc


def capture(out: Path, *, middles: int, exits: int) -> None:
    for binary in ("tor", "tor-gencert"):
        if shutil.which(binary) is None:
            sys.exit(f"{binary} is not installed (apt-get install tor)")
    version = subprocess.run(["tor", "--version"], capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory(prefix="dir-capture-") as tmp:
        _with_families(Path(tmp) / "family")
        with running_network(Path(tmp) / "tor", middles=middles, exits=exits) as net:
            documents, captured_at = _capture(net)
            authorities = [
                {
                    "nickname": a.nickname,
                    "v3ident": a.v3ident,
                    "fingerprint": a.fingerprint,
                    "address": f"{LOOPBACK}:{a.dir_port}",
                    "or_port": a.or_port,
                    "dir_authority_line": a.dir_authority_line(),
                }
                for a in net.authorities
            ]
            relays = [
                {"nickname": n.nickname, "fingerprint": n.fingerprint, "is_exit": n.is_exit}
                for n in (*net.authorities, *net.relays)
            ]
    out.mkdir(parents=True, exist_ok=True)
    for name, fetched in documents.items():
        (out / name).write_bytes(fetched.body)
    meta = {
        "captured_at": int(captured_at),
        "tor_version": version.stdout.strip().splitlines()[0],
        "authorities": authorities,
        "relays": relays,
        "served_by": authorities[0]["nickname"],
        "requests": {
            "consensus-microdesc": CONSENSUS_PATH,
            "consensus-microdesc.z": CONSENSUS_PATH + ".z",
            "consensus-microdesc.lzma": CONSENSUS_PATH + " (Accept-Encoding: x-tor-lzma)",
            "microdescs": MICRODESC_PATH + "<every m digest, '-'-joined>",
            "keys-all": KEYS_ALL_PATH,
            "keys-fp": "/tor/keys/fp/<v3idents, '+'-joined>",
        },
        "headers": {name: fetched.headers for name, fetched in documents.items()},
    }
    (out / "capture.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"captured {len(relays)} relays from {meta['tor_version']} into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--middles", type=int, default=2)
    parser.add_argument("--exits", type=int, default=2)
    args = parser.parse_args()
    capture(args.out, middles=args.middles, exits=args.exits)


if __name__ == "__main__":
    main()
