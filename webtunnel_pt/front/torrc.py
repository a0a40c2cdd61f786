"""A torrc, read for the options the built-in client shares with tor (``-f torrc``).

    config = parse_torrc(text)
    config.bridges, config.dir_authorities, config.socks_listen, config.data_directory,
    config.distinct_subnets, config.reject_internal, config.notices

Syntax as tor reads it (torrc(5), tor's config line parser):

- one option per line: a keyword, whitespace, the value; keywords are case-insensitive;
- ``#`` starts a comment, outside double quotes; blank lines are skipped;
- a line ending in a backslash continues on the next one: the backslash and the newline are
  removed (no space is put in their place), and within a continued value a ``#`` comments out
  the rest of that physical line, as in tor;
- a value in double quotes takes the C escapes ``\\\\ \\" \\n \\t \\r``.

Options read: ``Bridge`` (several), ``DirAuthority`` (several), ``SocksPort`` (the first one:
``PORT``, ``ADDR:PORT`` on loopback, or ``auto``; isolation flags after it are ignored with a
notice), ``DataDirectory``, ``EnforceDistinctSubnets`` and ``ClientRejectInternalAddresses``
(``0``/``1``). ``UseBridges`` is accepted silently (the built-in client always uses its bridges).
Every other option is ignored, with one notice per option naming its line, so a tor user's file
works as is. A bad value of an option read is a :class:`~webtunnel_pt.errors.ConfigError` naming
its line. Sans-I/O: the caller reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from webtunnel_pt.errors import ConfigError
from webtunnel_pt.front.values import (
    DEFAULT_LISTEN,
    check_bridge_line,
    check_dir_authority,
    parse_listen,
    parse_tor_bool,
)

__all__ = ["MAX_TORRC_BYTES", "TorrcConfig", "parse_torrc", "torrc_lines"]

#: tor's own torrc is a few KiB; anything past this is not a configuration file.
MAX_TORRC_BYTES = 1024 * 1024
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "'": "'"}
_SILENT = frozenset({"usebridges"})


@dataclass(frozen=True)
class TorrcConfig:
    """What a torrc says about the options the front ends share; None: not set there."""

    bridges: tuple[str, ...] = ()
    dir_authorities: tuple[str, ...] = ()
    socks_listen: tuple[str, int] | None = None
    data_directory: str | None = None
    distinct_subnets: bool | None = None
    reject_internal: bool | None = None
    notices: tuple[str, ...] = ()


def _unquote(value: str, lineno: int) -> str:
    """A value in double quotes, with tor's C escapes; anything after the closing quote but a
    comment is an error."""
    out: list[str] = []
    index = 1
    while index < len(value):
        char = value[index]
        if char == '"':
            rest = value[index + 1 :].strip()
            if rest and not rest.startswith("#"):
                raise ConfigError(f"torrc line {lineno}: text after the closing quote")
            return "".join(out)
        if char == "\\":
            escaped = value[index + 1 : index + 2]
            if escaped not in _ESCAPES:
                raise ConfigError(f"torrc line {lineno}: bad escape in quoted value")
            out.append(_ESCAPES[escaped])
            index += 2
            continue
        out.append(char)
        index += 1
    raise ConfigError(f"torrc line {lineno}: quoted value has no closing quote")


def _strip_comment(text: str) -> str:
    """Everything before a ``#`` that is outside double quotes."""
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return text[:index]
    return text


def torrc_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, keyword, value) of every option line, continuations joined; the line
    number is where the option starts."""
    if len(text) > MAX_TORRC_BYTES:
        raise ConfigError(f"torrc is over {MAX_TORRC_BYTES} bytes")
    physical = text.replace("\r\n", "\n").split("\n")
    result: list[tuple[int, str, str]] = []
    index = 0
    while index < len(physical):
        start = index
        parts = [_strip_comment(physical[index])]
        # tor: a backslash right before the newline continues the value on the next line.
        while physical[index].endswith("\\") and index + 1 < len(physical):
            parts[-1] = _strip_comment(physical[index][:-1])
            index += 1
            parts.append(_strip_comment(physical[index]))
        index += 1
        logical = "".join(parts).strip()
        if not logical:
            continue
        keyword, *rest = logical.split(None, 1)
        value = rest[0].strip() if rest else ""
        if value.startswith('"'):
            value = _unquote(value, start + 1)
        result.append((start + 1, keyword, value))
    return result


def _socks_port(value: str, lineno: int, notices: list[str]) -> tuple[str, int] | None:
    words = value.split()
    if not words:
        raise ConfigError(f"torrc line {lineno}: SocksPort needs a value")
    if len(words) > 1:
        notices.append(
            f"torrc line {lineno}: SocksPort flags ignored ({' '.join(words[1:])}): the "
            "built-in client isolates streams by SOCKS username and password only"
        )
    port = words[0]
    if port.lower() == "auto":
        return DEFAULT_LISTEN[0], 0
    if port.lower().startswith("unix:"):
        raise ConfigError(f"torrc line {lineno}: SocksPort unix: sockets are not supported")
    try:
        listen = parse_listen(port, "SocksPort")
    except ConfigError as exc:
        raise ConfigError(f"torrc line {lineno}: {exc}") from None
    if listen[1] == 0:
        notices.append(f"torrc line {lineno}: SocksPort 0 ignored: `socks` always listens")
        return None
    return listen


def parse_torrc(text: str) -> TorrcConfig:
    """Read the options the front ends share; see the module docstring."""
    bridges: list[str] = []
    authorities: list[str] = []
    notices: list[str] = []
    listen: tuple[str, int] | None = None
    seen_socks = False
    data_directory: str | None = None
    distinct: bool | None = None
    reject: bool | None = None
    for lineno, keyword, value in torrc_lines(text):
        key = keyword.lower()
        try:
            if key == "bridge":
                bridges.append(check_bridge_line(value))
            elif key == "dirauthority":
                check_dir_authority(value)
                authorities.append(value)
            elif key == "socksport":
                if seen_socks:
                    notices.append(f"torrc line {lineno}: only the first SocksPort is used")
                else:
                    seen_socks = True
                    listen = _socks_port(value, lineno, notices)
            elif key == "datadirectory":
                if not value:
                    raise ConfigError("DataDirectory needs a value")
                data_directory = value
            elif key == "enforcedistinctsubnets":
                distinct = parse_tor_bool(value, "EnforceDistinctSubnets")
            elif key == "clientrejectinternaladdresses":
                reject = parse_tor_bool(value, "ClientRejectInternalAddresses")
            elif key not in _SILENT:
                notices.append(
                    f"torrc line {lineno}: {keyword} ignored (not used by the built-in client)"
                )
        except ConfigError as exc:
            if str(exc).startswith("torrc line"):
                raise
            raise ConfigError(f"torrc line {lineno}: {exc}") from None
    return TorrcConfig(
        bridges=tuple(bridges),
        dir_authorities=tuple(authorities),
        socks_listen=listen,
        data_directory=data_directory,
        distinct_subnets=distinct,
        reject_internal=reject,
        notices=tuple(notices),
    )
