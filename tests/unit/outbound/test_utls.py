"""outbound.utls: lyrebird's ``utls=`` ClientHello names mapped to this client's TLS profiles."""

from __future__ import annotations

import pytest

from webtunnel_pt.errors import BridgeArgsError
from webtunnel_pt.outbound.utls import (
    CHROME_PROFILE,
    DEFAULT_PROFILE,
    FIREFOX_PROFILE,
    UTLS_NAMES,
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
        ("HELLOCHROME_102", CHROME_PROFILE),
        ("helloedge_106", CHROME_PROFILE),  # Chromium-based browsers share the profile
        ("hello360_11_0", CHROME_PROFILE),
        ("helloqq_auto", CHROME_PROFILE),
        ("hellofirefox_auto", FIREFOX_PROFILE),
        ("HelloFirefox_55", FIREFOX_PROFILE),
        ("hellofirefox_105", FIREFOX_PROFILE),
        ("None", DEFAULT_PROFILE),
    ],
)
def test_known_names_map_without_notice(value: str, profile: str) -> None:
    assert resolve_utls(value) == (profile, None)


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


@pytest.mark.parametrize("value", ["chrome", "hellochrome", "hellochrome_999", " hellochrome_auto"])
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
