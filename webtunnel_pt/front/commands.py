"""The ``socks`` and ``fetch`` subcommands as :mod:`webtunnel_pt.cli` registers them: their help,
their arguments, and runners that import the front ends only when chosen.

    Command("socks", help=SOCKS_HELP, description=SOCKS_DESCRIPTION,
            add_arguments=add_socks_arguments, run=run_socks)
    Command("fetch", help=FETCH_HELP, description=FETCH_DESCRIPTION,
            add_arguments=add_fetch_arguments, run=run_fetch, epilog=fetch_epilog)

Importing this module loads only the option model (no asyncio, ssl or cryptography), so the
parser can be built in managed mode at no cost.
"""

from __future__ import annotations

import argparse

from webtunnel_pt.front.arguments import add_client_arguments
from webtunnel_pt.front.exit_codes import exit_status_help
from webtunnel_pt.logs import Redactor

__all__ = [
    "FETCH_DESCRIPTION",
    "FETCH_HELP",
    "SOCKS_DESCRIPTION",
    "SOCKS_HELP",
    "add_fetch_arguments",
    "add_socks_arguments",
    "fetch_epilog",
    "run_fetch",
    "run_socks",
]

SOCKS_HELP = "a SOCKS proxy on loopback through the built-in Tor client (no tor needed)"
SOCKS_DESCRIPTION = (
    "Bootstrap the built-in Tor client through a WebTunnel bridge (progress as tor prints it, "
    "on stderr), then serve SOCKS5 (CONNECT with host names resolved by the exit, "
    "username/password stream isolation, tor's RESOLVE) and SOCKS4a on a loopback address, "
    "until SIGINT or SIGTERM. Prints 'SOCKS proxy ready on ADDR:PORT' on stdout when ready."
)
FETCH_HELP = "GET one http:// or https:// URL through the built-in Tor client"
FETCH_DESCRIPTION = (
    "Bootstrap the built-in Tor client through a WebTunnel bridge and GET the URL through a "
    "3-hop circuit: the host name is resolved by the exit, TLS for https:// runs to the "
    "destination and is checked against the system CA store (or SSL_CERT_FILE). The body goes "
    "to stdout (or -o FILE); progress, the status line and timings to stderr."
)


def add_socks_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, listen=True)


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, listen=False)
    parser.add_argument("-o", "--output", metavar="FILE", help="write the body here, not stdout")
    parser.add_argument(
        "--head", action="store_true", help="send HEAD instead of GET (no body is written)"
    )
    parser.add_argument("url", metavar="URL", help="an http:// or https:// URL")


def fetch_epilog() -> str:
    return "Redirects are not followed.\n\n" + exit_status_help()


def run_socks(args: argparse.Namespace, redactor: Redactor) -> int:
    from webtunnel_pt.front import socks_front

    return socks_front.run(args, redactor)


def run_fetch(args: argparse.Namespace, redactor: Redactor) -> int:
    from webtunnel_pt.front import fetch

    return fetch.run(args, redactor)
