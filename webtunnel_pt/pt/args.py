"""Per-connection PT arguments: the ``k=v;k=v`` string tor sends in the SOCKS credentials.

pt-spec §3.5: tor escapes every ``\\`` and ``;`` inside each ``k=v`` token with a backslash and
joins the tokens with ``;``. tor does not escape ``=`` (the spec says it should), so a value may
contain ``=``; a key ends at the first unescaped ``=``. Decoding follows goptlib's
``parseClientParameters``: a trailing ``;`` (an empty pair) is an error, duplicate keys are kept
in order, and a backslash escapes whatever byte follows it.

The generic SOCKS server core (:mod:`webtunnel_pt.socks.server`) hands over the credentials raw;
:func:`check_bridge_credentials` is the check the PT gives it (malformed RFC 1929 credentials get
``01 01``) and :func:`bridge_args` decodes the arguments from the finished request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from webtunnel_pt.errors import ArgsError, BridgeArgsError, SocksProtocolError
from webtunnel_pt.socks.server import SocksRequest

#: tor refuses bridge lines whose stringified arguments exceed this (config.c) and splits them
#: over the 255-byte SOCKS5 username and password fields.
MAX_ARGS_BYTES = 510


class BridgeArgs(Mapping[str, str]):
    """Decoded arguments: a mapping to each key's first value, all values kept in order."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> str:
        return self._values[key][0]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get_all(self, key: str) -> Sequence[str]:
        return tuple(self._values.get(key, ()))

    def pairs(self) -> list[tuple[str, str]]:
        return [(k, v) for k, values in self._values.items() for v in values]

    def __repr__(self) -> str:
        return f"BridgeArgs({self.pairs()!r})"


def escape_args(pairs: Iterable[tuple[str, str]]) -> str:
    """Encode pairs exactly as tor's ``pt_stringify_socks_args`` does."""
    tokens = []
    for key, value in pairs:
        if not key:
            raise ArgsError("empty key")
        token = f"{key}={value}"
        tokens.append(token.replace("\\", "\\\\").replace(";", "\\;"))
    return ";".join(tokens)


def _read_unescaped(text: str, start: int, stops: str) -> tuple[str, int]:
    out: list[str] = []
    i = start
    while i < len(text):
        char = text[i]
        if char in stops:
            break
        if char == "\\":
            i += 1
            if i == len(text):
                raise ArgsError("argument string ends with a lone backslash")
            char = text[i]
        out.append(char)
        i += 1
    return "".join(out), i


def parse_args(text: str) -> BridgeArgs:
    """Decode an argument string into :class:`BridgeArgs`; raise :class:`ArgsError`."""
    pairs: list[tuple[str, str]] = []
    if text == "":
        return BridgeArgs()
    i = 0
    while True:
        key, i = _read_unescaped(text, i, "=;")
        if i == len(text) or text[i] != "=":
            raise ArgsError(f"argument {len(pairs) + 1} has no equals sign")
        value, i = _read_unescaped(text, i + 1, ";")
        if not key:
            raise ArgsError(f"argument {len(pairs) + 1} has an empty key")
        pairs.append((key, value))
        if i == len(text):
            return BridgeArgs(pairs)
        i += 1


def decode_socks_credentials(username: bytes, password: bytes) -> str:
    """Join the RFC 1929 fields into the argument string (pt-spec §3.5).

    Strings of up to 255 bytes arrive whole in the username with a password of one NUL byte;
    longer ones are split blindly at byte 255, possibly inside an escape or a UTF-8 sequence,
    so the fields are joined before anything is decoded.
    """
    raw = username if password == b"\x00" else username + password
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArgsError("bridge arguments are not valid UTF-8") from exc


def encode_socks_credentials(text: str) -> tuple[bytes, bytes]:
    """Split an argument string over username and password the way tor does."""
    raw = text.encode("utf-8")
    if len(raw) > MAX_ARGS_BYTES:
        raise ArgsError(f"argument string is {len(raw)} bytes; tor allows {MAX_ARGS_BYTES}")
    if len(raw) <= 255:
        return (raw or b"\x00"), b"\x00"
    return raw[:255], raw[255:]


def parse_socks_credentials(username: bytes, password: bytes) -> BridgeArgs:
    """The bridge arguments in SOCKS credentials: RFC 1929 username and password, or a SOCKS4
    user id with ``password=b"\\x00"``; raise :class:`ArgsError`."""
    return parse_args(decode_socks_credentials(username, password))


def check_bridge_credentials(username: bytes, password: bytes) -> None:
    """Refuse RFC 1929 credentials that are not bridge arguments while tor still waits for the
    authentication answer (it gets ``01 01``)."""
    try:
        parse_socks_credentials(username, password)
    except BridgeArgsError as exc:
        raise ValueError(f"invalid bridge arguments in SOCKS credentials: {exc}") from exc


def bridge_args(request: SocksRequest) -> BridgeArgs | None:
    """The bridge arguments tor packed into the request's credentials (pt-spec §3.5), ``None``
    if it sent none. A SOCKS4 user id that does not decode is a SOCKS protocol error."""
    if request.username is not None and request.password is not None:
        return parse_socks_credentials(request.username, request.password)
    if not request.userid:
        return None
    try:
        return parse_socks_credentials(request.userid, b"\x00")
    except BridgeArgsError as exc:
        raise SocksProtocolError(f"invalid bridge arguments in SOCKS4 user id: {exc}") from exc
