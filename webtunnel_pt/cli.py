"""Command line: ``webtunnel-pt`` (managed mode when tor runs it) and its options.

Exit status: 0 after a clean stop, 1 on a configuration error reported to tor, 2 on a usage
error.

``webtunnel-pt probe "<bridge line>"`` checks a bridge layer by layer (built-in mode,
:mod:`webtunnel_pt.probe.run`, which has its own exit statuses); it is imported only when
asked for, so managed mode never loads ``cryptography``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from webtunnel_pt import __version__
from webtunnel_pt.deadlines import HALF_CLOSED_IDLE_S

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2
PROBE_COMMAND = "probe"
#: The log file --enable-logging writes in tor's PT state directory.
STATE_LOG_NAME = "webtunnel-pt.log"
PROBE_EPILOG = (
    'To test a bridge by hand: webtunnel-pt probe "<bridge line>" [--json] [--timeout S] '
    "(see webtunnel-pt probe --help for its exit statuses)."
)


def _go_bool(text: str) -> bool:
    """A boolean flag's optional value as Go's flag package reads it (``-unsafeLogging=true``)."""
    value = text.strip().lower()
    if value in {"1", "t", "true"}:
        return True
    if value in {"0", "f", "false"}:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds: {text}")
    return value


def _log_file(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """--log-file, else with --enable-logging the state directory's log, else None (stderr)."""
    if args.log_file:
        return str(args.log_file)
    if not args.enable_logging:
        return None
    state = environ.get("TOR_PT_STATE_LOCATION")
    if not state:
        return None  # managed mode reports the missing variable to tor
    os.makedirs(state, mode=0o700, exist_ok=True)
    return os.path.join(state, STATE_LOG_NAME)


class _ExactOptionParser(argparse.ArgumentParser):
    """Options only as spelled: Python 3.11 still expands ``-u`` to ``-unsafeLogging`` even
    with ``allow_abbrev=False`` (single-dash long options)."""

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        return []


def build_parser() -> argparse.ArgumentParser:
    parser = _ExactOptionParser(
        prog="webtunnel-pt",
        description=(
            "Tor pluggable transport client for WebTunnel. tor starts it through "
            "'ClientTransportPlugin webtunnel exec webtunnel-pt' and talks to it over the "
            "TOR_PT_* environment, stdout and a loopback SOCKS5 listener."
        ),
        epilog=PROBE_EPILOG,
        allow_abbrev=False,  # -u must not quietly mean -unsafeLogging
    )
    parser.add_argument(
        "--version", "-version", action="version", version=f"webtunnel-pt {__version__}"
    )
    parser.add_argument(
        "--log-level",
        "-logLevel",
        "--logLevel",
        default="notice",
        type=str.lower,
        choices=["error", "warn", "warning", "notice", "info", "debug"],
        help="least severe messages to log (default: notice)",
    )
    parser.add_argument("--log-file", help="write the text log here instead of stderr")
    parser.add_argument(
        "--enable-logging",
        "-enableLogging",
        "--enableLogging",
        nargs="?",
        const=True,
        default=False,
        type=_go_bool,
        metavar="BOOL",
        help=f"write the text log to {STATE_LOG_NAME} in tor's PT state directory "
        "(TOR_PT_STATE_LOCATION), as lyrebird's -enableLogging does; --log-file wins",
    )
    parser.add_argument(
        "--unsafe-logging",
        "-unsafeLogging",
        "--unsafeLogging",
        nargs="?",
        const=True,
        default=False,
        type=_go_bool,
        metavar="BOOL",
        help="log bridge URL paths and fingerprints (secrets) instead of scrubbing them",
    )
    parser.add_argument(
        "--half-close-idle",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="after one side of a tunnel has ended, close it once the other side has been "
        f"silent this long (default: {HALF_CLOSED_IDLE_S:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == [PROBE_COMMAND]:
        try:
            from webtunnel_pt.probe import (
                run as probe,  # lazy: loads cryptography; managed mode doesn't
            )
        except ModuleNotFoundError as exc:
            name = exc.name or ""
            if name != "cryptography" and not name.startswith("cryptography."):
                raise
            print(
                f"webtunnel-pt probe needs the 'cryptography' package ({exc}): "
                "pip install 'webtunnel-pt[builtin]'",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        return probe.main(words[1:])
    args = build_parser().parse_args(argv)
    from webtunnel_pt.logs import PtStdout, configure_logging

    if "TOR_PT_MANAGED_TRANSPORT_VER" not in os.environ:
        print(
            "webtunnel-pt: not started by tor (TOR_PT_MANAGED_TRANSPORT_VER is not set).\n"
            "Use it from torrc:  ClientTransportPlugin webtunnel exec "
            f"{sys.argv[0] or 'webtunnel-pt'}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    out = PtStdout()
    try:
        configure_logging(
            args.log_level,
            log_file=_log_file(args, os.environ),
            unsafe=args.unsafe_logging,
            pt_stdout=out,
        )
    except OSError as exc:
        print(f"webtunnel-pt: cannot open log file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from webtunnel_pt.pt import managed

    try:
        return managed.run(os.environ, out, half_closed_idle_s=args.half_close_idle)
    except KeyboardInterrupt:
        return EXIT_OK
