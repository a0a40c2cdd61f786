"""``utls=`` names: lyrebird's ClientHello template names mapped to this client's TLS profiles.

Sans-I/O: validating a bridge line needs the names, not the TLS machinery of
:mod:`webtunnel_pt.outbound.tls_profiles`. Names are matched case-insensitively, as lyrebird does.

The table is lyrebird 0.8's (``common/utlsutil``): every name it accepts is accepted here and
mapped to the nearest profile of this client; ``hellogolang``, which lyrebird lists but refuses,
is refused too, as is any other name. Only ``none``, ``hellochrome_auto`` and
``hellofirefox_auto`` say exactly what they get; every other name gets a notice saying what it
gets instead, once per name per process (:data:`UTLS_NOTICES`), not once per connection.
"""

from __future__ import annotations

import threading

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
#: Names that get exactly what they ask for: no notice.
_EXACT = frozenset({DEFAULT_PROFILE, "hellochrome_auto", "hellofirefox_auto"})


class NoticeOnce:
    """Remembers which keys have had their notice. Bounded by construction: the keys are the
    lower-cased names of :data:`UTLS_NAMES` (about 45)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen in this process, False afterwards."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


#: The process's record of which ``utls=`` names have been noticed.
UTLS_NOTICES = NoticeOnce()


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
    shown = value or "(empty)"
    if key in _FALLBACK:
        return profile, f"utls={shown} is not reproduced here; using the default TLS profile"
    if key not in _EXACT:
        browser = "Firefox" if profile == FIREFOX_PROFILE else "Chromium"
        return profile, (
            f"utls={shown} is approximated by the {profile} profile "
            f"(today's {browser} hello as far as OpenSSL allows)"
        )
    return profile, None
