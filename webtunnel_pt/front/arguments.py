"""The command-line options ``socks`` and ``fetch`` share, as argparse declares them.

    add_client_arguments(parser, listen=True)

Only the declarations: checking and merging them with a torrc is
:func:`webtunnel_pt.front.options.front_options`'s job. The parser of every subcommand is built
on each start, managed mode included, so this module imports nothing but argparse. Sans-I/O.
"""

from __future__ import annotations

import argparse

#: Where ``socks`` listens unless told otherwise: Tor Browser's SOCKS port.
DEFAULT_LISTEN = ("127.0.0.1", 9150)


def add_client_arguments(parser: argparse.ArgumentParser, *, listen: bool = True) -> None:
    """The shared options (``listen=False`` leaves out ``--listen``, for ``fetch``)."""
    parser.add_argument(
        "--bridge",
        action="append",
        default=None,
        metavar="LINE",
        help="a WebTunnel bridge line as in torrc, with or without the leading 'Bridge' "
        "(quote it; may be given several times)",
    )
    parser.add_argument(
        "-f",
        dest="torrc",
        metavar="TORRC",
        default=None,
        help="read Bridge, DirAuthority, SocksPort, DataDirectory, EnforceDistinctSubnets and "
        "ClientRejectInternalAddresses from this torrc; the command line wins",
    )
    if listen:
        parser.add_argument(
            "--listen",
            default=None,
            metavar="ADDR:PORT",
            help="SOCKS listen address, loopback only "
            f"(default: {DEFAULT_LISTEN[0]}:{DEFAULT_LISTEN[1]})",
        )
    parser.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="keep the client's directory cache here (torrc: DataDirectory; default: the "
        "user's cache directory under webtunnel-pt, e.g. ~/.cache/webtunnel-pt)",
    )
    parser.add_argument(
        "--dir-authority",
        action="append",
        default=None,
        metavar="LINE",
        help="trust this directory authority instead of tor's: a DirAuthority value or the "
        "whole line (may be given several times)",
    )
    parser.add_argument(
        "--no-distinct-subnets",
        action="store_true",
        help="allow relays of the same /16 in one circuit (EnforceDistinctSubnets 0), for "
        "private test networks",
    )
    parser.add_argument(
        "--allow-internal-addresses",
        action="store_true",
        help="let requests for loopback, private and link-local addresses and 'localhost' "
        "through (ClientRejectInternalAddresses 0), for private test networks",
    )
