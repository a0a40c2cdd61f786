"""WebTunnel bridge parameters: validation of the bridge line and its arguments.

A bridge line as written in torrc (``webtunnel-wire.md`` §2)::

    [Bridge] webtunnel <addr:port> [<FINGERPRINT>] url=https://host[:port]/path [k=v ...]

The address is a placeholder that tor sends in the SOCKS CONNECT and WebTunnel ignores; the
fingerprint is checked by tor (or by the built-in mode) inside the tunnel. The arguments:

- ``url``         required; ``https`` (TLS, port 443) or ``http`` (no TLS, port 80). Host is the
                  DNS and TCP target, the default TLS server name and always the ``Host``
                  header; the escaped path is the request target; query and fragment dropped.
- ``servername``  the TLS server name (SNI and certificate check) instead of the URL host; not
                  ``Host`` (lyrebird 0.8; the standalone 0.0.2 client also sets ``Host``). A
                  comma-separated list rotates (:mod:`webtunnel_pt.webtunnel.servernames`).
- ``utls-authority`` the name the certificate is checked against instead of the SNI
                  (lyrebird's uTLS ``InsecureServerNameToVerify``); a ``cert=`` pin still decides.
- ``sni-imitation`` lyrebird's shorthand: the SNI (unless ``servername=``), the certificate
                  checked against the URL host (unless ``utls-authority=``).
- ``addr``        explicit ``host:port`` TCP target (IPv6 in brackets), used as given.
- ``cert``        base64 SHA-256 certificate-chain pin replacing CA validation (client 0.0.3+).
- ``utls``        ClientHello template (lyrebird's names): ``none``, Firefox or Chrome profiles;
                  see :mod:`webtunnel_pt.outbound.utls`. Unknown names are refused; a name
                  that is only approximated gets a notice once per process.
- ``ver``         the server's version; accepted and ignored.

Sans-I/O: nothing here touches the network.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import string
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from webtunnel_pt.errors import BridgeArgsError
from webtunnel_pt.logs import REDACTED
from webtunnel_pt.outbound.utls import DEFAULT_PROFILE, UTLS_NOTICES, resolve_utls
from webtunnel_pt.pt.args import BridgeArgs

KNOWN_KEYS = frozenset(
    {"url", "servername", "addr", "cert", "utls", "ver", "utls-authority", "sni-imitation"}
)
#: Length of a SHA-256 certificate-chain pin.
CERT_PIN_BYTES = 32

_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{40}\Z")
_TRANSPORT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PATH_SAFE = frozenset(string.ascii_letters + string.digits + "/-._~!$&'()*+,;=:@")
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class BridgeConfig:
    """Everything one tunnel needs to know about the bridge, validated."""

    use_tls: bool
    url_host: str
    url_port: int
    request_target: str
    #: TLS server names (SNI) to send, one per dial; more than one rotate (``servername=a,b``).
    server_names: tuple[str, ...]
    dial_host: str
    dial_port: int
    #: The TCP target was given literally (``addr=`` or an IP in the URL): use it as given,
    #: without dropping private or loopback addresses.
    dial_literal: bool
    cert_pin: bytes | None = None
    utls: str | None = None
    version: str | None = None
    #: The name the certificate is checked against when it is not the SNI (``utls-authority=``,
    #: ``sni-imitation=``); None: the SNI itself. Ignored with ``cert=``: the pin decides.
    verify_name: str | None = None
    #: The outer-TLS profile ``utls=`` selects (:mod:`webtunnel_pt.outbound.utls`).
    tls_profile: str = DEFAULT_PROFILE
    #: Things worth a LOG notice (unknown keys, unsupported utls), free of secrets.
    notices: tuple[str, ...] = field(default=())

    @property
    def server_name(self) -> str:
        """The first (usually the only) TLS server name; a dial picks from :attr:`server_names`."""
        return self.server_names[0]

    @property
    def host_header(self) -> str:
        """The ``Host`` of the upgrade request: always the URL host (lyrebird 0.8)."""
        return self.url_host

    def redacted_url(self) -> str:
        """The URL with its secret path replaced, for logs."""
        scheme = "https" if self.use_tls else "http"
        return f"{scheme}://{_bracket(self.url_host)}:{self.url_port}/{REDACTED}"

    def describe(self, unsafe: bool = False) -> str:
        """A one-line description for logs; the path only when ``unsafe``."""
        scheme = "https" if self.use_tls else "http"
        path = self.request_target if unsafe else "/" + REDACTED
        target = f"{_bracket(self.url_host)}:{self.url_port}{path}"
        via = ""
        if (self.dial_host, self.dial_port) != (self.url_host, self.url_port):
            via = f" via {_bracket(self.dial_host)}:{self.dial_port}"
        name = ""
        if self.server_names != (self.url_host,):
            name = f" (server name {','.join(self.server_names)})"
        if self.verify_name is not None and self.cert_pin is None:
            name += f" (certificate checked for {self.verify_name})"
        return f"{scheme}://{target}{via}{name}"


@dataclass(frozen=True)
class BridgeLine:
    """A torrc ``Bridge`` line, split into its parts."""

    transport: str
    address: str
    fingerprint: str | None
    args: BridgeArgs


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def validate_hostname(name: str, what: str) -> str:
    """Return ``name`` if it is an IP literal or a DNS name; raise otherwise."""
    if _is_ip(name):
        return name
    candidate = name[:-1] if name.endswith(".") else name
    if not candidate or len(candidate) > 253:
        raise BridgeArgsError(f"{what} is not a valid host name")
    if not all(_HOSTNAME_LABEL.match(label) for label in candidate.split(".")):
        raise BridgeArgsError(f"{what} is not a valid host name")
    return candidate.lower()


def parse_port(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise BridgeArgsError(f"{what} has an invalid port")
    return int(text)


def split_host_port(text: str, what: str, default_port: int | None) -> tuple[str, int]:
    """Split ``host:port``, ``[v6]:port``, ``host`` or ``[v6]`` (when a default port exists)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BridgeArgsError(f"{what} has an unclosed '['")
        host, rest = text[1:end], text[end + 1 :]
        if not isinstance(_ip_or_none(host), ipaddress.IPv6Address):
            raise BridgeArgsError(f"{what} has an invalid IPv6 address in brackets")
        if rest == "" and default_port is not None:
            return host, default_port
        if not rest.startswith(":"):
            raise BridgeArgsError(f"{what} must be host:port")
        return host, parse_port(rest[1:], what)
    if text.count(":") > 1:
        raise BridgeArgsError(f"{what}: IPv6 addresses must be written in brackets")
    host, sep, port = text.partition(":")
    if not sep:
        if default_port is None:
            raise BridgeArgsError(f"{what} must be host:port")
        return validate_hostname(host, what), default_port
    return validate_hostname(host, what), parse_port(port, what)


def _ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def escape_path(path: str) -> str:
    """Percent-encode what may not appear in a request target; keep valid escapes as they are."""
    out: list[str] = []
    for i, char in enumerate(path):
        if char in _PATH_SAFE:
            out.append(char)
        elif char == "%" and len(path) >= i + 3 and set(path[i + 1 : i + 3]) <= _HEX:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def _parse_url(url: str) -> tuple[bool, str, int, str]:
    if any(not c.isprintable() for c in url):
        raise BridgeArgsError("url= contains control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BridgeArgsError("url= is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise BridgeArgsError("url= must start with https:// or http://")
    if parts.username is not None or parts.password is not None:
        raise BridgeArgsError("url= must not contain user information")
    host = parts.hostname
    if not host:
        raise BridgeArgsError("url= has no host")
    if "[" in parts.netloc and not isinstance(_ip_or_none(host), ipaddress.IPv6Address):
        raise BridgeArgsError("url= has an invalid IPv6 address in brackets")
    host = validate_hostname(host, "url= host")
    use_tls = scheme == "https"
    if port is None:
        port = 443 if use_tls else 80
    elif port == 0:
        raise BridgeArgsError("url= has an invalid port")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    target = "/" + escape_path(path)
    return use_tls, host, port, target


def parse_server_names(spec: str, what: str = "servername=") -> tuple[str, ...]:
    """A comma-separated list of server names: trimmed, empty ones dropped, each validated,
    duplicates dropped (keeping the first); none left is an error (as lyrebird)."""
    names = [name.strip() for name in spec.split(",")]
    valid = [validate_hostname(name, what) for name in names if name]
    if not valid:
        raise BridgeArgsError(f"{what} names no server")
    return tuple(dict.fromkeys(valid))


def _verify_name(value: str) -> str:
    if value.strip() == "*":
        raise BridgeArgsError(
            "utls-authority=* (no certificate name check) is not supported: "
            "give the name the certificate is issued for, or pin it with cert="
        )
    return validate_hostname(value.strip(), "utls-authority=")


def _parse_cert_pin(value: str) -> bytes:
    try:
        pin = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BridgeArgsError("cert= is not valid base64") from exc
    if len(pin) != CERT_PIN_BYTES:
        raise BridgeArgsError(f"cert= must decode to {CERT_PIN_BYTES} bytes, not {len(pin)}")
    return pin


def bridge_config_from_args(args: BridgeArgs) -> BridgeConfig:
    """Validate decoded arguments; raise :class:`BridgeArgsError` with a secret-free message."""
    if "url" not in args:
        raise BridgeArgsError("bridge line has no url= argument")
    use_tls, url_host, url_port, target = _parse_url(args["url"])
    notices: list[str] = []

    server_names: tuple[str, ...] = (url_host,)
    verify_name: str | None = None
    if "sni-imitation" in args:  # lyrebird: SNI = the value, the certificate still = URL host
        server_names = parse_server_names(args["sni-imitation"], "sni-imitation=")
        verify_name = url_host
    if "servername" in args:
        server_names = parse_server_names(args["servername"])
    if "utls-authority" in args:
        verify_name = _verify_name(args["utls-authority"])
    if not use_tls and verify_name is not None:
        notices.append("utls-authority= and sni-imitation= have no effect on an http:// url")
        verify_name = None

    dial_host, dial_port, literal = url_host, url_port, _is_ip(url_host)
    if "addr" in args:
        dial_host, dial_port = split_host_port(args["addr"], "addr=", default_port=url_port)
        literal = True

    cert_pin = _parse_cert_pin(args["cert"]) if "cert" in args else None
    if cert_pin is not None and not use_tls:
        raise BridgeArgsError("cert= needs an https:// url")

    utls = args.get("utls")
    tls_profile, utls_notice = resolve_utls(utls)
    if utls_notice is not None and UTLS_NOTICES.first((utls or "").lower()):
        notices.append(utls_notice)

    unknown = sorted(set(args) - KNOWN_KEYS)
    if unknown:
        notices.append("ignoring unknown bridge arguments: " + ", ".join(unknown))

    return BridgeConfig(
        use_tls=use_tls,
        url_host=url_host,
        url_port=url_port,
        request_target=target,
        server_names=server_names,
        dial_host=dial_host,
        dial_port=dial_port,
        dial_literal=literal,
        cert_pin=cert_pin,
        utls=utls,
        version=args.get("ver"),
        verify_name=verify_name,
        tls_profile=tls_profile,
        notices=tuple(notices),
    )


def parse_bridge_line(line: str) -> BridgeLine:
    """Split a torrc bridge line (with or without the leading ``Bridge``)."""
    tokens = line.split()
    if tokens and tokens[0].lower() == "bridge":
        tokens = tokens[1:]
    if not tokens:
        raise BridgeArgsError("empty bridge line")
    transport = "webtunnel"
    if _TRANSPORT.match(tokens[0]):
        transport = tokens.pop(0)
    if not tokens:
        raise BridgeArgsError("bridge line has no address")
    address = tokens.pop(0)
    split_host_port(address, "bridge address", default_port=443)
    fingerprint = None
    if tokens and "=" not in tokens[0]:
        candidate = tokens.pop(0)
        if not _FINGERPRINT.match(candidate):
            raise BridgeArgsError("bridge fingerprint must be 40 hexadecimal digits")
        fingerprint = candidate.upper()
    pairs = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise BridgeArgsError("bridge arguments must be key=value")
        pairs.append((key, value))
    return BridgeLine(transport, address, fingerprint, BridgeArgs(pairs))
