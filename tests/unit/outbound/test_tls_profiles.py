"""``utls=`` names -> profiles, and what each profile's context is set up to send."""

from __future__ import annotations

import importlib.util
import ssl

import pytest

from webtunnel_pt.errors import BridgeArgsError
from webtunnel_pt.outbound.tls_profiles import (
    ALPN_PROTOCOLS,
    BROWSER_PROFILES,
    DEFAULT_PROFILE,
    PROFILE_NAMES,
    UTLS_NAMES,
    resolve_utls,
    stdlib_context,
    tls_context,
)
from webtunnel_pt.pt.args import BridgeArgs
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args

needs_pyopenssl = pytest.mark.skipif(
    importlib.util.find_spec("OpenSSL") is None, reason="browser profiles need pyOpenSSL"
)


@pytest.mark.parametrize(
    ("value", "profile"),
    [
        (None, "none"),
        ("none", "none"),
        ("None", "none"),
        ("hellofirefox_auto", "firefox"),
        ("HelloFirefox_Auto", "firefox"),
        ("hellochrome_auto", "chrome"),
    ],
)
def test_known_names_select_a_profile_silently(value: str | None, profile: str) -> None:
    assert resolve_utls(value) == (profile, None)


@pytest.mark.parametrize(
    ("value", "profile"),
    [
        ("hellofirefox_102", "firefox"),
        ("HELLOFIREFOX_55", "firefox"),
        ("HelloChrome_100", "chrome"),
        ("helloedge_106", "chrome"),
        ("Hello360_Auto", "chrome"),
        ("helloqq_11_1", "chrome"),
    ],
)
def test_approximated_names_select_a_profile_with_a_notice(value: str, profile: str) -> None:
    chosen, notice = resolve_utls(value)
    assert chosen == profile
    assert notice is not None and f"approximated by the {profile} profile" in notice


@pytest.mark.parametrize(
    "value", ["", "HelloRandomizedNoALPN", "hellorandomized", "HelloIOS_14", "hellosafari_16_0"]
)
def test_unreproduced_lyrebird_names_fall_back_with_a_notice(value: str) -> None:
    profile, notice = resolve_utls(value)
    assert profile == DEFAULT_PROFILE
    assert notice is not None and "not reproduced" in notice


@pytest.mark.parametrize(
    "value", ["hellogolang", "chrome", "hellofirefox_1", "hellochrome", " none"]
)
def test_unknown_names_are_refused(value: str) -> None:
    with pytest.raises(BridgeArgsError, match="not a known ClientHello template"):
        resolve_utls(value)


def test_bridge_config_carries_the_profile() -> None:
    args = BridgeArgs([("url", "https://h.example/p"), ("utls", "HelloChrome_Auto")])
    config = bridge_config_from_args(args)
    assert config.tls_profile == "chrome" and config.utls == "HelloChrome_Auto"
    assert config.notices == ()
    assert (
        bridge_config_from_args(BridgeArgs([("url", "https://h.example/p")])).tls_profile == "none"
    )


def test_bridge_config_refuses_an_unknown_name() -> None:
    with pytest.raises(BridgeArgsError):
        bridge_config_from_args(BridgeArgs([("url", "https://h.example/p"), ("utls", "bogus")]))


def test_every_name_maps_to_a_profile() -> None:
    assert set(UTLS_NAMES.values()) <= PROFILE_NAMES
    assert all(name == name.lower() for name in UTLS_NAMES)


def test_no_profile_offers_h2() -> None:
    assert ALPN_PROTOCOLS == ("http/1.1",)


def test_default_context_is_curl_like_and_strict() -> None:
    ctx = stdlib_context(pinned=False)
    assert ctx is tls_context(False) is stdlib_context(False)  # built once
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_TICKET
    assert ctx.post_handshake_auth
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    names = [c["name"] for c in ctx.get_ciphers()]
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    default.set_ciphers("DEFAULT")
    assert names == [c["name"] for c in default.get_ciphers()]


def test_pinned_default_context_skips_ca_checks() -> None:
    ctx = stdlib_context(pinned=True)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert stdlib_context(pinned=True, check_hostname=False) is ctx  # the pin decides anyway


def test_context_for_another_name_still_verifies_the_chain() -> None:
    """utls-authority=: the name is checked after the handshake, the chain by OpenSSL; the
    usual context is a different object and keeps its hostname check."""
    ctx = stdlib_context(pinned=False, check_hostname=False)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
    assert ctx is tls_context(False, DEFAULT_PROFILE, check_hostname=False)
    usual = stdlib_context(pinned=False)
    assert usual is not ctx and usual.check_hostname


@needs_pyopenssl
@pytest.mark.parametrize("name", sorted(BROWSER_PROFILES))
def test_browser_contexts_build(name: str) -> None:
    from OpenSSL import SSL

    built = tls_context(False, name)
    assert built is tls_context(False, name)
    assert built.context.get_verify_mode() == SSL.VERIFY_PEER
    pinned = tls_context(True, name)
    assert pinned.context.get_verify_mode() == SSL.VERIFY_NONE
    conn = SSL.Connection(built.context, None)
    offered = conn.get_cipher_list()
    profile = BROWSER_PROFILES[name]
    assert offered[len(profile.tls13_ciphers) :] == list(profile.tls12_ciphers)
    assert offered[: len(profile.tls13_ciphers)] == list(profile.tls13_ciphers)
