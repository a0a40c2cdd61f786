"""probe's consensus layer, sans-I/O: the summary line and JSON details of a verified directory,
the check and authority named when it fails, its text line, verdict, table cell and live line,
its exit status; and the directory options (--dir-authority as a whole line or its value,
malformed lines, --state-dir) as the command line reads them. The layer over loopback sockets is
in tests/integration/test_probe_consensus.py, against real tor in
tests/e2e/test_e2e_directory.py."""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from tests.support.link_capture import FINGERPRINT
from webtunnel_pt import cli
from webtunnel_pt.errors import (
    ChannelClosed,
    ConfigError,
    ConsensusNotYetValid,
    ConsensusSignatureError,
    ConsensusStale,
    DirAuthorityError,
    DirectoryError,
    HandshakeTimeout,
    KeyCertificateError,
    MicrodescError,
)
from webtunnel_pt.logs import Redactor
from webtunnel_pt.probe import run as probe
from webtunnel_pt.probe.consensus import (
    ConsensusOptions,
    check_of,
    describe_directory,
    describe_failure,
    utc,
)
from webtunnel_pt.probe.output import format_layer, format_verdict, to_json
from webtunnel_pt.probe.report import EXIT_CODES, LayerFailed, LayerResult, ProbeReport
from webtunnel_pt.probe.table import bridge_row, consensus_cell, format_live, format_table
from webtunnel_pt.tor.authorities import DEFAULT_AUTHORITIES, parse_dir_authority
from webtunnel_pt.tor.dirreport import DirectoryReport
from webtunnel_pt.tor.options import directory_options, parse_authority_options
from webtunnel_pt.webtunnel.bridge import bridge_config_from_args, parse_bridge_line

SECRET = "s3cretPathValue"
#: 2026-12-03 04:00:00 UTC
VALID_AFTER = 1796270400
V3 = ["A" * 40, "B" * 40, "C" * 40]
FPS = ["1" * 40, "2" * 40, "3" * 40]
LINES = [
    f"DirAuthority auth{i} orport={5000 + i} no-v2 v3ident={V3[i]} 127.0.0.1:{7000 + i} {FPS[i]}"
    for i in range(3)
]


def options(state_dir: Path | None = None) -> ConsensusOptions:
    return ConsensusOptions(
        parse_authority_options(LINES), state_dir=state_dir, authorities_source="--dir-authority"
    )


def directory_report(**changes: Any) -> DirectoryReport:
    fields: dict[str, Any] = {
        "timings": (("consensus", 0.25), ("certificates", 0.125), ("verify", 0.01)),
        "requests": 3,
        "signatures_valid": 3,
        "authorities": 3,
        "certificates_fetched": 3,
        "consensus_relays": 6,
        "relays": 6,
        "exits": 1,
        "microdescs": 6,
        "discarded_microdescs": 0,
    }
    fields.update(changes)
    return DirectoryReport(**fields)


VIEW = types.SimpleNamespace(
    valid_after=VALID_AFTER, fresh_until=VALID_AFTER + 10, valid_until=VALID_AFTER + 20
)


# ---- a verified directory ------------------------------------------------------------------


def test_utc_times_as_a_consensus_writes_them() -> None:
    assert utc(VALID_AFTER) == "2026-12-03 04:00:00"


def test_summary_and_details_of_a_verified_directory() -> None:
    summary, details = describe_directory(directory_report(), VIEW, options())  # type: ignore[arg-type]
    assert summary.startswith(
        "valid-after 2026-12-03 04:00:00; signatures 3/3 (--dir-authority); 6 relays, 1 exit; "
        "3 requests; cache off"
    )
    assert details["valid_after"] == "2026-12-03 04:00:00"
    assert details["valid_until"] == "2026-12-03 04:00:20"
    assert (details["signatures"], details["signatures_valid"], details["authorities"]) == (
        "3/3",
        3,
        3,
    )
    assert (details["consensus_relays"], details["relays"], details["exits"]) == (6, 6, 1)
    assert details["timings"] == {"consensus": 0.25, "certificates": 0.125, "verify": 0.01}
    assert details["cache"] == {"enabled": False}
    json.dumps(details)


def test_relays_without_a_microdescriptor_are_said() -> None:
    report = directory_report(relays=4, exits=0, microdescs=4)
    summary, _ = describe_directory(report, VIEW, options())  # type: ignore[arg-type]
    assert "4 relays (2 listed without a microdescriptor), 0 exits" in summary


def test_with_a_cache_the_summary_says_what_came_from_where(tmp_path: Path) -> None:
    summary, details = describe_directory(directory_report(), VIEW, options(tmp_path))  # type: ignore[arg-type]
    assert details["cache"]["enabled"] is True
    assert details["cache"]["consensus"] in {"network", "cache"}
    assert "cache: consensus " in summary and "microdescs " in summary
    assert str(tmp_path) not in summary  # the path is the user's own business


def test_the_text_line_verdict_json_and_table_of_a_passed_layer() -> None:
    summary, details = describe_directory(directory_report(), VIEW, options())  # type: ignore[arg-type]
    layer = LayerResult("consensus", "ok", 1.5, summary, details)
    assert format_layer(layer).startswith("  ok   consensus    1500.0 ms  valid-after 2026-12-03")
    report = ProbeReport("https://x.example:443/[scrubbed]", [layer], total_seconds=2)
    assert format_verdict(report) == (
        "result: OK - every layer works and the bridge identity matches, and its directory "
        "verifies (2000 ms)"
    )
    doc = to_json(report)
    assert doc["layers"][0]["layer"] == "consensus"
    assert doc["layers"][0]["details"]["signatures"] == "3/3"
    assert consensus_cell(report) == "3/3, 6 relays, 1 exit"
    row = bridge_row(5, f"https://x.example:443/{SECRET} {FINGERPRINT}", report, lambda t: t)
    assert format_live(row, 1, 1).endswith("2000 ms  consensus 3/3, 6 relays, 1 exit")
    table = format_table([row]).splitlines()
    column = table[0].index("CONSENSUS")
    assert table[1][column:].startswith("3/3, 6 relays, 1 exit")


def test_a_skipped_layer_leaves_the_verdict_and_the_cell_alone() -> None:
    layer = LayerResult("consensus", "skipped", summary="--no-consensus")
    assert format_layer(layer) == "  --   consensus               --no-consensus"
    report = ProbeReport("t", [layer], total_seconds=0.1)
    assert format_verdict(report) == (
        "result: OK - every layer works and the bridge identity matches (100 ms)"
    )
    assert consensus_cell(report) == "-"


# ---- a failed layer -----------------------------------------------------------------------


def signature_error() -> ConsensusSignatureError:
    return ConsensusSignatureError(
        f"consensus signed validly by 0 of 3 configured authorities, 2 needed: ? ({V3[0]}): "
        "no signature",
        valid=0,
        needed=2,
        failures={V3[0]: "no signature", V3[1]: "no signature", V3[2]: "no signature"},
    )


@pytest.mark.parametrize(
    ("exc", "check"),
    [
        (signature_error(), "signatures"),
        (KeyCertificateError("authority auth1 (BBBB): certificate expired"), "key certificate"),
        (ConsensusNotYetValid("consensus is not valid until 5"), "freshness (not yet valid)"),
        (ConsensusStale("consensus expired at 5"), "freshness (stale)"),
        (MicrodescError("bad microdescriptor"), "microdescriptors"),
        (HandshakeTimeout("directory answer not complete within 60 s"), "fetch (timed out)"),
        (DirectoryError("consensus: the bridge answered HTTP 404 Not found"), "fetch"),
        (ChannelClosed("relay closed the link"), "fetch"),
    ],
)
def test_each_failure_names_its_check(exc: Exception, check: str) -> None:
    assert check_of(exc) == check
    named, error, details = describe_failure(exc, options())
    assert named == details["check"] == check
    assert error.startswith(f"{check} check failed: ")
    if check != "signatures":  # that one is reworded: see below
        assert error == f"{check} check failed: {exc}"


def test_a_signature_failure_names_each_authority_with_its_configured_nickname() -> None:
    _, error, details = describe_failure(signature_error(), options())
    assert error == (
        "signatures check failed: consensus signed validly by 0 of 3 configured authorities, "
        "2 needed: auth0 (v3ident AAAAAAAA...): no signature; auth1 (v3ident BBBBBBBB...): "
        "no signature; auth2 (v3ident CCCCCCCC...): no signature"
    )
    assert Redactor().scrub(error) == error  # nothing in it reads as a fingerprint
    assert (details["signatures_valid"], details["signatures_needed"]) == (0, 2)
    assert details["failed_authorities"] == [
        {"v3ident_prefix": V3[i][:8], "nickname": f"auth{i}", "reason": "no signature"}
        for i in range(3)
    ]


def run_consensus_layer(step: Awaitable[Any]) -> probe.Probe:
    line = parse_bridge_line(
        f"webtunnel 192.0.2.1:443 {FINGERPRINT} url=https://x.example/{SECRET}"
    )
    run = probe.Probe(line, bridge_config_from_args(line.args), consensus=options())
    asyncio.run(run._layer("consensus", step))
    return run


def test_a_failed_consensus_layer_exits_19_with_its_check_in_the_details() -> None:
    async def refused() -> Any:
        raise signature_error()

    with pytest.raises(LayerFailed) as info:
        run_consensus_layer(refused())
    failed = info.value
    assert failed.exit_code == EXIT_CODES["consensus"] == 19
    assert failed.layer == "consensus"
    assert failed.error.startswith("signatures check failed: consensus signed validly by 0 of 3")
    assert "auth1 (v3ident BBBBBBBB...): no signature" in failed.error
    assert failed.details["check"] == "signatures"
    assert failed.details["failed_authorities"][1]["nickname"] == "auth1"


def test_a_bug_in_the_layer_is_an_internal_error() -> None:
    async def broken() -> Any:
        raise KeyError("oops")

    with pytest.raises(LayerFailed) as info:
        run_consensus_layer(broken())
    assert info.value.exit_code == 1


def test_without_consensus_options_the_layer_is_skipped_as_no_consensus() -> None:
    line = parse_bridge_line(
        f"webtunnel 192.0.2.1:443 {FINGERPRINT} url=https://x.example/{SECRET}"
    )
    run = probe.Probe(line, bridge_config_from_args(line.args))
    run._skip_rest()
    last = run.report.layers[-1]
    assert (last.layer, last.status, last.summary) == ("consensus", "skipped", "--no-consensus")


# ---- the directory options ----------------------------------------------------------------


def test_a_whole_line_and_its_value_mean_the_same() -> None:
    whole = parse_authority_options([LINES[0]])
    value = parse_authority_options([LINES[0].removeprefix("DirAuthority ")])
    assert whole == value
    assert whole[0].nickname == "auth0" and whole[0].v3ident == bytes.fromhex(V3[0])
    assert whole[0].line() == parse_dir_authority(LINES[0]).line()


def test_dir_authority_lines_replace_the_built_in_ones(tmp_path: Path) -> None:
    given = directory_options(LINES, str(tmp_path / "state"))
    assert [a.nickname for a in given.authorities] == ["auth0", "auth1", "auth2"]
    assert given.custom_authorities and given.state_dir_given
    assert given.state_dir == tmp_path / "state"
    assert given.describe_authorities() == "3 from --dir-authority"
    default = directory_options(None, None, environ={"HOME": "/home/u"}, platform="linux")
    assert default.authorities == DEFAULT_AUTHORITIES and not default.custom_authorities
    assert default.state_dir == Path("/home/u/.cache/webtunnel-pt")
    assert not default.state_dir_given
    assert default.describe_authorities() == "9 built-in"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["auth0 127.0.0.1:7000 " + FPS[0]], "--dir-authority: DirAuthority line has no v3ident="),
        ([LINES[0], "auth1 v3ident=XYZ 127.0.0.1:7001 " + FPS[1]], "--dir-authority #2: "),
        ([LINES[0], LINES[0]], "--dir-authority: two DirAuthority lines have the same v3ident"),
        (["DirAuthority"], "--dir-authority: DirAuthority line is empty"),
        ([LINES[0] + " bogus=1"], "--dir-authority: "),
        (["auth0 v3ident=" + V3[0] + " 127.0.0.1 " + FPS[0]], "is not IPv4:dirport"),
    ],
)
def test_malformed_lines_are_refused_naming_the_option(lines: list[str], message: str) -> None:
    with pytest.raises(DirAuthorityError) as info:
        parse_authority_options(lines)
    assert message in str(info.value)
    assert str(info.value).startswith("--dir-authority")


def test_an_empty_state_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match="--state-dir: empty"):
        directory_options(None, " ")


def test_the_probe_reads_the_directory_options() -> None:
    args = cli.build_parser().parse_args(
        ["probe", "x", "--dir-authority", LINES[0], "--dir-authority", LINES[1], "--no-consensus"]
    )
    assert args.dir_authority == LINES[:2] and args.no_consensus
    assert args.state_dir is None and args.consensus_timeout == 60.0
    given = cli.read_directory_options(args)
    assert [a.nickname for a in given.authorities] == ["auth0", "auth1"]


@pytest.mark.parametrize("value", ["0", "-1", "inf", "soon"])
def test_consensus_timeout_must_be_positive(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["probe", "x", "--consensus-timeout", value])
    assert stop.value.code == cli.EXIT_USAGE
    assert "--consensus-timeout" in capsys.readouterr().err


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("extra", [(), ("--no-consensus",), ("--file", "-")])
def test_a_malformed_dir_authority_is_a_usage_error(
    extra: tuple[str, ...], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bridge = (
        []
        if "--file" in extra
        else [f"webtunnel 192.0.2.1:443 {FINGERPRINT} url=https://x/{SECRET}"]
    )
    state = tmp_path / "state"
    argv = ["probe", *bridge, *extra, "--dir-authority", "auth0 127.0.0.1:7000 " + FPS[0]]
    code = cli.main([*argv, "--state-dir", str(state)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE == 2
    assert "webtunnel-pt probe: --dir-authority: DirAuthority line has no v3ident=" in err
    assert SECRET not in err
    assert not state.exists()  # nothing was created for a refused command line


def test_the_state_dir_is_created_owner_only(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["probe", "x", "--state-dir", str(tmp_path / "a" / "b")])
    path = cli.prepare_state_dir(cli.read_directory_options(args))
    assert path == tmp_path / "a" / "b" and path.is_dir()
    assert path.stat().st_mode & 0o777 == 0o700


def test_a_state_dir_that_cannot_be_created_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = cli.build_parser().parse_args(["probe", "x", "--state-dir", str(blocker / "sub")])
    with pytest.raises(ConfigError, match=r"--state-dir .*/file/sub: cannot create it"):
        cli.prepare_state_dir(cli.read_directory_options(args))


def test_the_default_state_dir_is_left_to_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not created before the consensus layer stores something (a probe that fails earlier
    leaves no directory behind)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = cli.build_parser().parse_args(["probe", "x"])
    path = cli.prepare_state_dir(cli.read_directory_options(args))
    assert path == tmp_path / "cache" / "webtunnel-pt"
    assert not path.exists()
