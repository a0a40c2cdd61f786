"""The directory options every front end shares (``probe`` now; ``socks`` and ``fetch`` later):
whom to trust for the consensus and where to cache it.

    options = directory_options(["DirAuthority auth0 v3ident=... 127.0.0.1:7000 FP", ...],
                                state_dir=None)
    options.authorities       the --dir-authority lines, parsed, or the built-in ones
    options.state_dir         --state-dir, or the user's cache dir under webtunnel-pt
    options.describe_authorities()   "3 from --dir-authority" / "9 built-in"

``--dir-authority`` takes the value of a torrc ``DirAuthority`` line or the whole line (with
its leading keyword), as :func:`~webtunnel_pt.tor.authorities.parse_dir_authority` reads it,
and is repeatable; when given at all, the lines replace the built-in authorities (as tor's
``DirAuthority`` option replaces its defaults). A malformed line is a
:class:`~webtunnel_pt.errors.DirAuthorityError` naming the option and the line's position, which
the command line reports as a usage error (an empty ``--state-dir`` is a
:class:`~webtunnel_pt.errors.ConfigError`). The argparse side lives in :mod:`webtunnel_pt.cli`
(``add_directory_arguments``), which imports this module only when a command runs, so managed
mode loads none of ``webtunnel_pt.tor``.

Sans-I/O: nothing here touches the disk; creating the state directory (mode 0700) is the
caller's step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from webtunnel_pt.errors import ConfigError, DirAuthorityError
from webtunnel_pt.tor.authorities import (
    DEFAULT_AUTHORITIES,
    DirAuthority,
    parse_dir_authorities,
    parse_dir_authority,
)
from webtunnel_pt.tor.dircache import default_state_dir

DIR_AUTHORITY_OPTION = "--dir-authority"
STATE_DIR_OPTION = "--state-dir"


@dataclass(frozen=True)
class DirectoryOptions:
    """What ``--dir-authority`` and ``--state-dir`` asked for, with the defaults filled in."""

    authorities: tuple[DirAuthority, ...]
    state_dir: Path
    #: The authorities came from ``--dir-authority`` (not the built-in list).
    custom_authorities: bool = False
    #: The state directory came from ``--state-dir`` (not the default).
    state_dir_given: bool = False

    def describe_authorities(self) -> str:
        """``3 from --dir-authority`` or ``9 built-in``: for a report line."""
        where = f"from {DIR_AUTHORITY_OPTION}" if self.custom_authorities else "built-in"
        return f"{len(self.authorities)} {where}"


def parse_authority_options(lines: Sequence[str]) -> tuple[DirAuthority, ...]:
    """The ``--dir-authority`` values, each a ``DirAuthority`` line or its value; raises
    :class:`DirAuthorityError` naming the option (and which one, when there are several)."""
    for index, line in enumerate(lines, 1):
        try:
            parse_dir_authority(line)
        except DirAuthorityError as exc:
            which = f" #{index}" if len(lines) > 1 else ""
            raise DirAuthorityError(f"{DIR_AUTHORITY_OPTION}{which}: {exc}") from exc
    try:
        return parse_dir_authorities(lines)
    except DirAuthorityError as exc:
        raise DirAuthorityError(f"{DIR_AUTHORITY_OPTION}: {exc}") from exc


def directory_options(
    dir_authorities: Sequence[str] | None,
    state_dir: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> DirectoryOptions:
    """The options as given on a command line (``None`` or empty: not given). ``environ`` and
    ``platform`` choose the default state directory (see
    :func:`~webtunnel_pt.tor.dircache.default_state_dir`)."""
    custom = bool(dir_authorities)
    authorities = parse_authority_options(dir_authorities or ()) if custom else DEFAULT_AUTHORITIES
    if state_dir is not None and not state_dir.strip():
        raise ConfigError(f"{STATE_DIR_OPTION}: empty directory name")
    path = Path(state_dir) if state_dir is not None else default_state_dir(environ, platform)
    return DirectoryOptions(
        authorities=authorities,
        state_dir=path,
        custom_authorities=custom,
        state_dir_given=state_dir is not None,
    )
