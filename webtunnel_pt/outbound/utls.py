"""``utls=`` names: lyrebird's ClientHello template names mapped to this client's TLS profiles.

Sans-I/O: validating a bridge line needs the names, not the TLS machinery of
:mod:`webtunnel_pt.outbound.tls_profiles`. Names are matched case-insensitively, as lyrebird does.
"""

from __future__ import annotations

from webtunnel_pt.errors import BridgeArgsError

DEFAULT_PROFILE = "none"
CHROME_PROFILE = "chrome"
FIREFOX_PROFILE = "firefox"

_FIREFOX_NAMES = [f"hellofirefox_{v}" for v in ("auto", "55", "56", "63", "65", "99", "102", "105")]
_CHROMIUM_NAMES = [
    *(f"hellochrome_{v}" for v in ("auto", "58", "62", "70", "72", "83", "87", "96", "100", "102")),
    *(f"helloedge_{v}" for v in ("auto", "85", "106")),
    *(f"hello360_{v}" for v in ("auto", "7_5", "11_0")),
    *(f"helloqq_{v}" for v in ("auto", "11_1")),
]
#: lyrebird templates without a counterpart here: the default profile with a notice.
_FALLBACK_NAMES = [
    "",  # lyrebird: hellorandomizednoalpn
    "hellorandomized",
    "hellorandomizedalpn",
    "hellorandomizednoalpn",
    *(f"helloios_{v}" for v in ("auto", "11_1", "12_1", "13", "14")),
    "helloandroid_11",
    *(f"hellosafari_{v}" for v in ("auto", "16_0")),
]
#: Lower-cased ``utls=`` value -> profile name.
UTLS_NAMES: dict[str, str] = {
    DEFAULT_PROFILE: DEFAULT_PROFILE,
    **{name: FIREFOX_PROFILE for name in _FIREFOX_NAMES},
    **{name: CHROME_PROFILE for name in _CHROMIUM_NAMES},
    **{name: DEFAULT_PROFILE for name in _FALLBACK_NAMES},
}
_FALLBACK = frozenset(_FALLBACK_NAMES)


def resolve_utls(value: str | None) -> tuple[str, str | None]:
    """Map a ``utls=`` value to (profile name, notice or None); refuse unknown names."""
    if value is None:
        return DEFAULT_PROFILE, None
    key = value.lower()
    profile = UTLS_NAMES.get(key)
    if profile is None:
        raise BridgeArgsError(
            f"utls={value!r} is not a known ClientHello template "
            "(use none, hellofirefox_auto or hellochrome_auto)"
        )
    if key in _FALLBACK:
        shown = value or "(empty)"
        return profile, f"utls={shown} is not reproduced here; using the default TLS profile"
    return profile, None
