"""outbound.utls: lyrebird's ``utls=`` ClientHello names mapped to this client's TLS profiles."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import BridgeArgsError
from webtunnel_pt.outbound.utls import (
    CHROME_PROFILE,
    DEFAULT_PROFILE,
    FIREFOX_PROFILE,
    UTLS_NAMES,
    NoticeOnce,
    resolve_utls,
)


def test_no_utls_argument_is_the_default_profile_without_notice() -> None:
    assert resolve_utls(None) == (DEFAULT_PROFILE, None)
    assert resolve_utls("none") == (DEFAULT_PROFILE, None)


@pytest.mark.parametrize(
    ("value", "profile"),
    [
        ("hellochrome_auto", CHROME_PROFILE),
        ("HelloChrome_Auto", CHROME_PROFILE),  # case-insensitive, as lyrebird
        ("hellofirefox_auto", FIREFOX_PROFILE),
        ("None", DEFAULT_PROFILE),
    ],
)
def test_exact_names_map_without_notice(value: str, profile: str) -> None:
    assert resolve_utls(value) == (profile, None)


@pytest.mark.parametrize(
    ("value", "profile", "browser"),
    [
        ("HELLOCHROME_102", CHROME_PROFILE, "Chromium"),
        ("helloedge_106", CHROME_PROFILE, "Chromium"),  # Chromium-based browsers share it
        ("hello360_11_0", CHROME_PROFILE, "Chromium"),
        ("helloqq_auto", CHROME_PROFILE, "Chromium"),
        ("HelloFirefox_55", FIREFOX_PROFILE, "Firefox"),
        ("hellofirefox_105", FIREFOX_PROFILE, "Firefox"),
    ],
)
def test_versioned_and_other_browser_names_are_approximated_with_a_notice(
    value: str, profile: str, browser: str
) -> None:
    assert resolve_utls(value) == (
        profile,
        f"utls={value} is approximated by the {profile} profile "
        f"(today's {browser} hello as far as OpenSSL allows)",
    )


#: Every name lyrebird 0.8 accepts (common/utlsutil, uTLS 1.6.7), the empty value included.
LYREBIRD_0_8_NAMES = [
    "",
    "hellorandomized",
    "hellorandomizedalpn",
    "hellorandomizednoalpn",
    *(f"hellofirefox_{v}" for v in ("auto", "55", "56", "63", "65", "99", "102", "105")),
    *(f"hellochrome_{v}" for v in ("auto", "58", "62", "70", "72", "83", "87", "96", "100", "102")),
    *(f"helloios_{v}" for v in ("auto", "11_1", "12_1", "13", "14")),
    "helloandroid_11",
    *(f"helloedge_{v}" for v in ("auto", "85", "106")),
    *(f"hellosafari_{v}" for v in ("auto", "16_0")),
    *(f"hello360_{v}" for v in ("auto", "7_5", "11_0")),
    *(f"helloqq_{v}" for v in ("auto", "11_1")),
]


def test_every_lyrebird_name_is_accepted_and_only_exact_ones_are_silent() -> None:
    silent = {name for name in LYREBIRD_0_8_NAMES if resolve_utls(name)[1] is None}
    assert silent == {"hellochrome_auto", "hellofirefox_auto"}
    assert set(UTLS_NAMES) == {*LYREBIRD_0_8_NAMES, "none"}


def test_notice_once_per_name() -> None:
    once = NoticeOnce()
    assert [once.first(k) for k in ("a", "b", "a", "b", "c")] == [True, True, False, False, True]
    once.clear()
    assert once.first("a")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("hellorandomized", "hellorandomized"),
        ("HelloIOS_14", "HelloIOS_14"),
        ("hellosafari_16_0", "hellosafari_16_0"),
        ("helloandroid_11", "helloandroid_11"),
        ("", "(empty)"),  # lyrebird reads an empty value as hellorandomizednoalpn
    ],
)
def test_templates_without_counterpart_fall_back_with_a_notice(value: str, shown: str) -> None:
    profile, notice = resolve_utls(value)
    assert profile == DEFAULT_PROFILE
    assert notice == f"utls={shown} is not reproduced here; using the default TLS profile"


@pytest.mark.parametrize(
    "value", ["hellogolang", "chrome", "hellochrome", "hellochrome_999", " hellochrome_auto"]
)
def test_unknown_names_are_refused(value: str) -> None:
    with pytest.raises(BridgeArgsError) as info:
        resolve_utls(value)
    assert str(info.value) == (
        f"utls={value!r} is not a known ClientHello template "
        "(use none, hellofirefox_auto or hellochrome_auto)"
    )


def test_table_keys_are_lower_case_and_values_are_profiles() -> None:
    assert all(key == key.lower() for key in UTLS_NAMES)
    assert set(UTLS_NAMES.values()) == {DEFAULT_PROFILE, CHROME_PROFILE, FIREFOX_PROFILE}


def test_every_profile_exists_in_tls_profiles() -> None:
    """The sans-I/O table and the TLS machinery agree on the profile names."""
    from webtunnel_pt.outbound.tls_profiles import PROFILE_NAMES

    assert set(UTLS_NAMES.values()) <= PROFILE_NAMES
