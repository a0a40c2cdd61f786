"""The options ``socks`` and ``fetch`` share: what they accept and how a torrc merges in.

    add_client_arguments(parser)                        --bridge, -f, --listen, ...
    options = front_options(args, torrc_text=None)      -> FrontOptions (ConfigError if bad)

Command line::

    --bridge "<line>"          a WebTunnel bridge line, with or without the leading "Bridge"
                               (several allowed; validated as the PT would)
    -f TORRC                   read Bridge, DirAuthority, SocksPort, DataDirectory,
                               EnforceDistinctSubnets, ClientRejectInternalAddresses from a torrc
    --listen ADDR:PORT         SOCKS listen address, loopback only (default 127.0.0.1:9150)
    --state-dir DIR            where the client keeps its directory cache (torrc DataDirectory;
                               default: the user's cache directory, as for ``probe``)
    --dir-authority "<line>"   a DirAuthority value or whole line (several allowed), read by
                               the same parser as ``probe``'s (tor/options.py)
    --no-distinct-subnets      allow two relays of a /16 in one path (EnforceDistinctSubnets 0)
    --allow-internal-addresses let requests for internal addresses through
                               (ClientRejectInternalAddresses 0)

An option given on the command line wins over the torrc: a list given there (bridges,
authorities) replaces the torrc's list, as on tor's command line. Sans-I/O: the caller reads
the torrc file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from webtunnel_pt.errors import ConfigError
from webtunnel_pt.front.arguments import add_client_arguments
from webtunnel_pt.front.torrc import TorrcConfig, parse_torrc
from webtunnel_pt.front.values import DEFAULT_LISTEN, check_bridge_line, parse_listen
from webtunnel_pt.tor.authorities import DirAuthority, parse_dir_authorities
from webtunnel_pt.tor.options import parse_authority_options

__all__ = ["FrontOptions", "add_client_arguments", "front_options"]

#: More bridges than this in one configuration is a list for ``probe --file``, not a client.
MAX_BRIDGES = 32


@dataclass(frozen=True)
class FrontOptions:
    """A front end's validated configuration."""

    #: Bridge lines without the ``Bridge`` keyword, as the client takes them.
    bridges: tuple[str, ...]
    listen: tuple[str, int]
    #: None: the default (the user's cache directory, chosen by the session).
    state_dir: str | None
    #: None: the client's built-in authorities.
    dir_authorities: tuple[DirAuthority, ...] | None
    distinct_subnets: bool
    reject_internal: bool
    #: What the torrc reader ignored, for the log.
    notices: tuple[str, ...] = ()


def front_options(args: argparse.Namespace, torrc_text: str | None = None) -> FrontOptions:
    """Validate the command line, merge the torrc under it; :class:`ConfigError` if unusable."""
    torrc = parse_torrc(torrc_text) if torrc_text is not None else TorrcConfig()
    bridges = tuple(check_bridge_line(b) for b in args.bridge) if args.bridge else torrc.bridges
    if not bridges:
        raise ConfigError('no bridge given: use --bridge "<bridge line>" or -f TORRC')
    if len(bridges) > MAX_BRIDGES:
        raise ConfigError(f"more than {MAX_BRIDGES} bridges given")
    listen_text = getattr(args, "listen", None)
    if listen_text is not None:
        listen = parse_listen(listen_text)
    else:
        listen = torrc.socks_listen or DEFAULT_LISTEN
    authorities = None
    if args.dir_authority:
        # The probe's parser: a DirAuthorityError (a ConfigError) naming --dir-authority #N.
        authorities = parse_authority_options(args.dir_authority)
    elif torrc.dir_authorities:  # each line already checked by the torrc reader
        try:
            authorities = parse_dir_authorities(torrc.dir_authorities)
        except ConfigError as exc:
            raise ConfigError(f"torrc: bad DirAuthority set: {exc}") from None
    distinct = torrc.distinct_subnets if torrc.distinct_subnets is not None else True
    reject = torrc.reject_internal if torrc.reject_internal is not None else True
    return FrontOptions(
        bridges=bridges,
        listen=listen,
        state_dir=args.state_dir if args.state_dir is not None else torrc.data_directory,
        dir_authorities=authorities,
        distinct_subnets=False if args.no_distinct_subnets else distinct,
        reject_internal=False if args.allow_internal_addresses else reject,
        notices=torrc.notices,
    )
