"""Command line: one parser for ``webtunnel-pt`` (managed mode when tor runs it) and its
subcommands.

    webtunnel-pt [FLAGS]                          managed mode (tor starts it)
    webtunnel-pt [FLAGS] probe "<bridge line>" [--json] [--timeout S] [--proxy URI] [FLAGS]
                 [--no-consensus | --dir-authority LINE ... --state-dir DIR --consensus-timeout S]
    webtunnel-pt [FLAGS] probe --file FILE [--concurrency N] [--any] [--json [--unordered]] ...

The FLAGS are lyrebird's, in Go's spellings and ours: ``-logLevel``/``--log-level``,
``-unsafeLogging[=BOOL]``, ``-enableLogging[=BOOL]``, ``--log-file``, ``-version``; they work
before and after a subcommand. A boolean takes its value only as ``-flag=value``, as Go's flag
package reads it, so ``probe -unsafeLogging "<bridge line>"`` keeps the bridge line.

Exit status of managed mode: 0 after a clean stop, 1 on a configuration error reported to tor,
2 on a usage error. ``probe`` has its own (``webtunnel-pt probe --help``).

A subcommand is one :class:`Command` in :data:`COMMANDS`: its arguments, and a runner that
imports its modules only when it is chosen, so managed mode never loads ``cryptography``.
Here the :class:`~webtunnel_pt.logs.Redactor` is created and handed to logging and to the mode.

The directory options, shared by every front end of the built-in Tor client (``probe`` now):
:func:`add_directory_arguments` adds ``--dir-authority LINE`` (repeatable; a torrc
``DirAuthority`` line or its value; replaces the built-in authorities) and ``--state-dir DIR``
(the directory cache; default the user's cache directory under ``webtunnel-pt``);
:func:`read_directory_options` parses them (:mod:`webtunnel_pt.tor.options`) and
:func:`prepare_state_dir` creates a given ``--state-dir``, mode 0700 (the default one is
created by the cache when it first stores something). A malformed line or a ``--state-dir``
that cannot be created is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webtunnel_pt import __version__
from webtunnel_pt.deadlines import HALF_CLOSED_IDLE_S, PROBE_CONSENSUS_TIMEOUT_S, PROBE_TIMEOUT_S
from webtunnel_pt.errors import ConfigError
from webtunnel_pt.front import commands as front_commands
from webtunnel_pt.logs import PtStdout, Redactor, configure_logging

if TYPE_CHECKING:
    from webtunnel_pt.probe.consensus import ConsensusOptions
    from webtunnel_pt.tor.options import DirectoryOptions

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2
PROBE_COMMAND = "probe"
#: ``probe --file``: how many bridges are probed at once unless --concurrency says otherwise.
PROBE_DEFAULT_CONCURRENCY = 8
#: More probes at once would only queue in the kernel: each holds a few sockets and a TLS
#: session, and the default open-files limit is often 1024.
PROBE_MAX_CONCURRENCY = 256
#: The log file --enable-logging writes in tor's PT state directory.
STATE_LOG_NAME = "webtunnel-pt.log"
PROBE_EPILOG = (
    'To test a bridge by hand: webtunnel-pt probe "<bridge line>" [--json] [--timeout S], '
    "or many: webtunnel-pt probe --file FILE (see webtunnel-pt probe --help for its exit "
    "statuses)."
)
#: Every spelling of the boolean flags; :func:`_explicit_booleans` gives each its value.
_BOOLEAN_FLAGS = frozenset(
    {
        "--unsafe-logging",
        "-unsafeLogging",
        "--unsafeLogging",
        "--enable-logging",
        "-enableLogging",
        "--enableLogging",
    }
)


def _go_bool(text: str) -> bool:
    """A boolean flag's optional value as Go's flag package reads it (``-unsafeLogging=true``)."""
    value = text.strip().lower()
    if value in {"1", "t", "true"}:
        return True
    if value in {"0", "f", "false"}:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _explicit_booleans(words: Sequence[str]) -> list[str]:
    """``-unsafeLogging`` becomes ``-unsafeLogging=true``: Go never takes a boolean's value from
    the next word, and argparse would (the bridge line after ``probe -unsafeLogging``)."""
    out: list[str] = []
    for index, word in enumerate(words):
        if word == "--":
            return out + list(words[index:])
        out.append(f"{word}=true" if word in _BOOLEAN_FLAGS else word)
    return out


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


class _Parser(argparse.ArgumentParser):
    """Options only as spelled: Python 3.11 still expands ``-u`` to ``-unsafeLogging`` even
    with ``allow_abbrev=False`` (single-dash long options). Booleans get explicit values
    (:func:`_explicit_booleans`). A help epilog may be built only when help is shown."""

    def __init__(self, *args: Any, lazy_epilog: Callable[[], str] | None = None, **kw: Any):
        kw.setdefault("allow_abbrev", False)  # -u must not quietly mean -unsafeLogging
        super().__init__(*args, **kw)
        self._lazy_epilog = lazy_epilog

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        return []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = sys.argv[1:] if args is None else args
        return super().parse_known_args(_explicit_booleans(words), namespace)

    def format_help(self) -> str:
        if self._lazy_epilog is not None:
            self.epilog = self._lazy_epilog()
        return super().format_help()


def _add_common_flags(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """lyrebird's flags. A subcommand's copy has no defaults (``SUPPRESS``) so that it does
    not undo what was given before the subcommand."""

    def default(value: object) -> object:
        return value if with_defaults else argparse.SUPPRESS

    parser.add_argument(
        "--version", "-version", action="version", version=f"webtunnel-pt {__version__}"
    )
    parser.add_argument(
        "--log-level",
        "-logLevel",
        "--logLevel",
        default=default("notice"),
        type=str.lower,
        choices=["error", "warn", "warning", "notice", "info", "debug"],
        help="least severe messages to log (default: notice)",
    )
    parser.add_argument(
        "--log-file", default=default(None), help="write the text log here instead of stderr"
    )

    def add_go_bool(names: tuple[str, ...], help_text: str) -> None:
        """A boolean flag that also takes Go's ``-flag=BOOL``."""
        parser.add_argument(
            *names,
            nargs="?",
            const=True,
            default=default(False),
            type=_go_bool,
            metavar="BOOL",
            help=help_text,
        )

    add_go_bool(
        ("--enable-logging", "-enableLogging", "--enableLogging"),
        f"write the text log to {STATE_LOG_NAME} in tor's PT state directory "
        "(TOR_PT_STATE_LOCATION), as lyrebird's -enableLogging does; --log-file wins",
    )
    add_go_bool(
        ("--unsafe-logging", "-unsafeLogging", "--unsafeLogging"),
        "log and show bridge URL paths and fingerprints (secrets) instead of scrubbing them",
    )


# ---- the directory options (every front end of the built-in Tor client) ---------------------


def add_directory_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dir-authority`` and ``--state-dir``, as every front end spells them."""
    parser.add_argument(
        "--dir-authority",
        action="append",
        default=None,
        metavar="LINE",
        help="trust this directory authority instead of the built-in ones: a torrc DirAuthority "
        "line or its value, '[nickname] [orport=N] v3ident=HEX [ipv6=[addr]:port] "
        "address:dirport FINGERPRINT' (quote it); repeat it for each authority",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="keep the directory cache here, created with mode 0700 (default: the user's cache "
        "directory under webtunnel-pt, e.g. ~/.cache/webtunnel-pt)",
    )


def read_directory_options(args: argparse.Namespace) -> DirectoryOptions:
    """The parsed ``--dir-authority`` and ``--state-dir``; raises
    :class:`~webtunnel_pt.errors.ConfigError` (a usage error) for a malformed line."""
    from webtunnel_pt.tor.options import directory_options

    return directory_options(args.dir_authority, args.state_dir)


def prepare_state_dir(options: DirectoryOptions) -> Path:
    """The state directory to use. A ``--state-dir`` is created now (mode 0700), so that one
    that cannot be is a usage error (:class:`~webtunnel_pt.errors.ConfigError`) before anything
    runs. The default one is left to the directory cache, which creates it (mode 0700) when it
    first stores something, and reports, without failing, a disk that refuses."""
    path = options.state_dir
    if not options.state_dir_given:
        return path
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"--state-dir {path}: cannot create it: {reason}") from exc
    return path


# ---- subcommands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A subcommand: how to read its arguments, how to run it, what ``--help`` says."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    #: Imports what it needs, runs, returns the exit status; logging is already set up.
    run: Callable[[argparse.Namespace, Redactor], int]
    epilog: Callable[[], str] | None = None


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= PROBE_MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be from 1 to {PROBE_MAX_CONCURRENCY}: {value}")
    return value


def _probe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bridge",
        nargs="*",
        help="the bridge line as in torrc, with or without the leading 'Bridge' (quote it)",
    )
    parser.add_argument(
        "--file",
        metavar="FILE",
        help="probe every bridge line of FILE ('-' for standard input): one per line, blank "
        "lines and # comments skipped",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document at the end (with --file: one JSON line per bridge line, "
        "then a summary line)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=PROBE_TIMEOUT_S,
        metavar="SECONDS",
        help="deadline for the layers of one bridge up to its descriptor; the consensus layer "
        f"has --consensus-timeout (default: {PROBE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--proxy",
        metavar="URI",
        help="reach the bridges through this proxy, written as TOR_PT_PROXY: "
        "socks5://[user:pass@]host:port, socks4a://[user@]host:port or "
        "http://[user:pass@]host:port",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        metavar="N",
        help=f"with --file: probe up to N bridges at once (default: {PROBE_DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--any",
        action="store_true",
        help="with --file: exit 0 if at least one bridge passed (default: only if all did)",
    )
    parser.add_argument(
        "--unordered",
        action="store_true",
        help="with --file --json: write each bridge's JSON line as it finishes, not in input order",
    )
    parser.add_argument(
        "--no-consensus",
        action="store_true",
        help="skip the consensus layer (fetching and verifying the directory through the bridge)",
    )
    parser.add_argument(
        "--consensus-timeout",
        type=_positive_seconds,
        default=PROBE_CONSENSUS_TIMEOUT_S,
        metavar="SECONDS",
        help="deadline of the consensus layer, which starts with it; --timeout covers the "
        f"layers before it (default: {PROBE_CONSENSUS_TIMEOUT_S:g})",
    )
    add_directory_arguments(parser)


def _probe_epilog() -> str:
    from webtunnel_pt.probe.output import exit_status_help

    return exit_status_help()


def _probe_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of probe's arguments, if anything."""
    if args.file is None and not args.bridge:
        return "give a bridge line or --file FILE"
    if args.file is not None and args.bridge:
        return "give either a bridge line or --file FILE, not both"
    if args.file is None:
        given = [
            name
            for name, value in (
                ("--any", args.any),
                ("--unordered", args.unordered),
                ("--concurrency", args.concurrency is not None),
            )
            if value
        ]
        if given:
            return f"{', '.join(given)}: only with --file"
    if args.unordered and not args.json:
        return "--unordered: only with --json"
    return None


def _run_probe(args: argparse.Namespace, redactor: Redactor) -> int:
    problem = _probe_usage_error(args)
    if problem is not None:
        print(f"webtunnel-pt probe: {problem}", file=sys.stderr)
        return EXIT_USAGE
    proxy = None
    if args.proxy is not None:
        from webtunnel_pt.errors import ProxyConfigError
        from webtunnel_pt.outbound.proxy_uri import parse_proxy_uri

        try:
            proxy = parse_proxy_uri(args.proxy)
        except ProxyConfigError as exc:
            message = str(exc).replace("TOR_PT_PROXY", "the proxy URI")
            print(f"webtunnel-pt probe: invalid --proxy: {message}", file=sys.stderr)
            return EXIT_USAGE
    try:
        from webtunnel_pt.probe import batch, run  # loads cryptography; managed mode doesn't
    except ModuleNotFoundError as exc:
        name = exc.name or ""
        if name != "cryptography" and not name.startswith("cryptography."):
            raise
        print(
            f"webtunnel-pt probe needs the 'cryptography' package, a dependency of webtunnel-pt "
            f"that is missing here ({exc}): pip install 'cryptography>=42'",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        consensus = _probe_consensus_options(args)
    except ConfigError as exc:
        print(f"webtunnel-pt probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.file is not None:
        options = batch.BatchOptions(
            concurrency=args.concurrency or PROBE_DEFAULT_CONCURRENCY,
            json_output=args.json,
            ordered=not args.unordered,
            any_passes=args.any,
            timeout_s=args.timeout,
            proxy=proxy,
            consensus=consensus,
        )
        return batch.main(args.file, options, redactor=redactor)
    return run.main(
        " ".join(args.bridge),
        redactor=redactor,
        json_output=args.json,
        timeout_s=args.timeout,
        proxy=proxy,
        consensus=consensus,
    )


def _probe_consensus_options(args: argparse.Namespace) -> ConsensusOptions | None:
    """The consensus layer's options; None with ``--no-consensus`` (the lines are still
    checked). Raises :class:`~webtunnel_pt.errors.ConfigError` for a usage error."""
    from webtunnel_pt.probe.consensus import ConsensusOptions

    directory = read_directory_options(args)
    if args.no_consensus:
        return None
    return ConsensusOptions(
        directory.authorities,
        state_dir=prepare_state_dir(directory),
        timeout_s=args.consensus_timeout,
        authorities_source="--dir-authority" if directory.custom_authorities else "built-in",
    )


COMMANDS: tuple[Command, ...] = (
    Command(
        PROBE_COMMAND,
        help="check a WebTunnel bridge layer by layer",
        description=(
            "Connect to a WebTunnel bridge the way tor would and report every layer with its "
            "time: DNS, TCP, outer TLS, upgrade, inner TLS, Tor channel (CERTS, NETINFO), "
            "CREATE_FAST, the bridge's descriptor, and the network's consensus fetched through "
            "the bridge and verified against the directory authorities."
        ),
        add_arguments=_probe_arguments,
        run=_run_probe,
        epilog=_probe_epilog,
    ),
    Command(
        "socks",
        help=front_commands.SOCKS_HELP,
        description=front_commands.SOCKS_DESCRIPTION,
        add_arguments=front_commands.add_socks_arguments,
        run=front_commands.run_socks,
    ),
    Command(
        "fetch",
        help=front_commands.FETCH_HELP,
        description=front_commands.FETCH_DESCRIPTION,
        add_arguments=front_commands.add_fetch_arguments,
        run=front_commands.run_fetch,
        epilog=front_commands.fetch_epilog,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="webtunnel-pt",
        description=(
            "Tor pluggable transport client for WebTunnel. tor starts it through "
            "'ClientTransportPlugin webtunnel exec webtunnel-pt' and talks to it over the "
            "TOR_PT_* environment, stdout and a loopback SOCKS5 listener."
        ),
        epilog=PROBE_EPILOG,
    )
    _add_common_flags(parser, with_defaults=True)
    parser.add_argument(
        "--half-close-idle",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="after one side of a tunnel has ended, close it once the other side has been "
        f"silent this long (default: {HALF_CLOSED_IDLE_S:g})",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            lazy_epilog=command.epilog,
        )
        _add_common_flags(sub, with_defaults=False)
        command.add_arguments(sub)
    return parser


def _not_started_by_tor() -> int:
    print(
        "webtunnel-pt: not started by tor (TOR_PT_MANAGED_TRANSPORT_VER is not set).\n"
        "Use it from torrc:  ClientTransportPlugin webtunnel exec "
        f"{sys.argv[0] or 'webtunnel-pt'}",
        file=sys.stderr,
    )
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = next((c for c in COMMANDS if c.name == args.command), None)
    if command is None and "TOR_PT_MANAGED_TRANSPORT_VER" not in os.environ:
        return _not_started_by_tor()
    redactor = Redactor(unsafe=args.unsafe_logging)
    out = PtStdout() if command is None else None
    try:
        configure_logging(
            args.log_level, redactor, log_file=_log_file(args, os.environ), pt_stdout=out
        )
    except OSError as exc:
        print(f"webtunnel-pt: cannot open log file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if command is not None:
        return command.run(args, redactor)
    from webtunnel_pt.pt import managed

    try:
        return managed.run(
            os.environ, out, redactor=redactor, half_closed_idle_s=args.half_close_idle
        )
    except KeyboardInterrupt:
        return EXIT_OK
