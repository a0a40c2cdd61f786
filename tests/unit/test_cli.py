"""The command line: one parser, lyrebird's spellings before and after a subcommand. (Runs in
a child process are in tests/integration/test_cli_process.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from webtunnel_pt import __version__, cli


def parse(*words: str) -> cli.argparse.Namespace:
    return cli.build_parser().parse_args(list(words))


@pytest.mark.parametrize(
    "words",
    [
        ("-logLevel", "INFO", "-unsafeLogging", "-enableLogging"),
        ("-logLevel=INFO", "-unsafeLogging", "-enableLogging"),
        ("--log-level", "info", "--unsafe-logging", "--enable-logging"),
    ],
)
def test_lyrebird_and_long_spellings_mean_the_same(words: tuple[str, ...]) -> None:
    args = parse(*words)
    assert (args.log_level, args.unsafe_logging, args.enable_logging) == ("info", True, True)


@pytest.mark.parametrize("flag", ["--version", "-version"])
def test_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse(flag)
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"webtunnel-pt {__version__}"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "ten"])
def test_half_close_idle_must_be_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        parse("--half-close-idle", value)
    assert stop.value.code == cli.EXIT_USAGE
    assert "--half-close-idle" in capsys.readouterr().err


def test_half_close_idle_accepts_fractions() -> None:
    assert parse("--half-close-idle", "0.25").half_close_idle == 0.25


def test_enable_logging_writes_into_the_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "pt_state"  # tor may not have created it yet
    log_file = cli._log_file(parse("-enableLogging"), {"TOR_PT_STATE_LOCATION": str(state)})
    assert log_file == str(state / cli.STATE_LOG_NAME)
    assert state.is_dir()


def test_log_file_wins_over_enable_logging(tmp_path: Path) -> None:
    args = parse("-enableLogging", "--log-file", str(tmp_path / "mine.log"))
    assert cli._log_file(args, {"TOR_PT_STATE_LOCATION": str(tmp_path)}) == str(
        tmp_path / "mine.log"
    )


def test_without_enable_logging_the_log_goes_to_stderr(tmp_path: Path) -> None:
    assert cli._log_file(parse(), {"TOR_PT_STATE_LOCATION": str(tmp_path)}) is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("words", "unsafe", "enable"),
    [
        (("-unsafeLogging=true", "--enableLogging"), True, True),
        (("-unsafeLogging=false", "-enableLogging=1"), False, True),
        (("--unsafeLogging", "--logLevel=DEBUG"), True, False),
    ],
)
def test_go_flag_forms(words: tuple[str, ...], unsafe: bool, enable: bool) -> None:
    """lyrebird parses its flags with Go's flag package: -x, --x, -x=value for booleans."""
    args = parse(*words)
    assert (args.unsafe_logging, args.enable_logging) == (unsafe, enable)


@pytest.mark.parametrize("words", [("-u",), ("--unsafe",), ("-unsafeLogging=maybe",)])
def test_abbreviations_and_bad_booleans_are_usage_errors(words: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse(*words)
    assert stop.value.code == cli.EXIT_USAGE


def test_log_files_are_created_owner_only(tmp_path: Path) -> None:
    from webtunnel_pt import logs

    path = tmp_path / "pt.log"
    stream = logs._open_private_log(str(path))
    stream.write("x\n")
    stream.close()
    assert path.stat().st_mode & 0o777 == logs.LOG_FILE_MODE == 0o600


@pytest.mark.parametrize(
    "words",
    [
        ("probe", "webtunnel 192.0.2.1:443", "-unsafeLogging=true", "-logLevel=DEBUG"),
        ("-unsafeLogging=true", "-logLevel", "debug", "probe", "webtunnel 192.0.2.1:443"),
        ("-logLevel", "debug", "probe", "-unsafeLogging", "webtunnel", "192.0.2.1:443"),
        ("--log-level", "debug", "probe", "--unsafe-logging", "webtunnel 192.0.2.1:443"),
    ],
)
def test_lyrebird_flags_work_before_and_after_probe(words: tuple[str, ...]) -> None:
    args = parse(*words)
    assert args.command == cli.PROBE_COMMAND
    assert (args.log_level, args.unsafe_logging, args.enable_logging) == ("debug", True, False)
    assert " ".join(args.bridge) == "webtunnel 192.0.2.1:443"


def test_probe_options_keep_their_spellings() -> None:
    args = parse("probe", "webtunnel 192.0.2.1:443", "--json", "--timeout", "2.5")
    assert (args.json, args.timeout, args.unsafe_logging) == (True, 2.5, False)
    assert parse("probe", "x").timeout == cli.PROBE_TIMEOUT_S


def test_managed_mode_is_the_default() -> None:
    args = parse("-logLevel", "info")
    assert args.command is None and args.log_level == "info"


def test_a_boolean_never_takes_the_next_word() -> None:
    assert cli._explicit_booleans(["-unsafeLogging", "x", "--", "-enableLogging"]) == [
        "-unsafeLogging=true",
        "x",
        "--",
        "-enableLogging",
    ]


@pytest.mark.parametrize("words", [("probe", "-u", "x"), ("probe", "x", "-unsafeLogging=maybe")])
def test_probe_abbreviations_and_bad_booleans_are_usage_errors(words: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse(*words)
    assert stop.value.code == cli.EXIT_USAGE


def test_probe_help_lists_its_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse("probe", "--help")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out and "identity mismatch" in out and "--timeout" in out
    assert "-unsafeLogging" in out


def test_every_command_is_a_subparser() -> None:
    for command in cli.COMMANDS:
        with pytest.raises(SystemExit) as stop:
            parse(command.name, "--help")
        assert stop.value.code == 0


# ---- probe --file and --proxy ---------------------------------------------------------------


def run_main(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str]:
    from tests.support.logging_state import preserved_logging

    with preserved_logging():
        code = cli.main(list(words))
    return code, capsys.readouterr().err


def test_probe_file_options() -> None:
    args = parse("probe", "--file", "-", "--concurrency", "3", "--any", "--json", "--unordered")
    assert (args.file, args.bridge, args.concurrency) == ("-", [], 3)
    assert (args.any, args.json, args.unordered) == (True, True, True)
    defaults = parse("probe", "--file", "list.txt")
    assert defaults.concurrency is None  # given or not: only allowed with --file
    assert cli.PROBE_DEFAULT_CONCURRENCY == 8
    assert (defaults.any, defaults.unordered, defaults.proxy) == (False, False, None)


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5", str(cli.PROBE_MAX_CONCURRENCY + 1)])
def test_probe_concurrency_is_a_bounded_whole_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        parse("probe", "--file", "-", "--concurrency", value)
    assert stop.value.code == cli.EXIT_USAGE
    assert "--concurrency" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ((), "give a bridge line or --file FILE"),
        (("webtunnel 192.0.2.1:443", "--file", "-"), "not both"),
        (("webtunnel 192.0.2.1:443", "--any"), "--any: only with --file"),
        (
            ("x", "--concurrency", "2", "--unordered", "--json"),
            "--unordered, --concurrency: only with --file",
        ),
        (("--file", "-", "--unordered"), "--unordered: only with --json"),
    ],
)
def test_probe_argument_combinations_are_usage_errors(
    words: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(capsys, "probe", *words)
    assert code == cli.EXIT_USAGE
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://127.0.0.1:21", "proxy scheme 'ftp' is not supported"),
        ("127.0.0.1:1080", "not an absolute URI"),
        ("socks5://user:hunter2@127.0.0.1", "port"),
    ],
)
def test_a_bad_proxy_uri_is_a_usage_error(
    uri: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for words in (("webtunnel 192.0.2.1:443",), ("--file", "-")):
        code, err = run_main(capsys, "probe", *words, "--proxy", uri)
        assert code == cli.EXIT_USAGE
        assert err.startswith("webtunnel-pt probe: invalid --proxy: ") and message in err
        assert "hunter2" not in err and "TOR_PT_PROXY" not in err


def test_probe_file_that_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(capsys, "probe", "--file", str(tmp_path / "missing.txt"))
    assert code == cli.EXIT_USAGE
    assert "cannot read" in err and "No such file" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    code, err = run_main(capsys, "probe", "--file", str(empty))
    assert code == cli.EXIT_USAGE and "no bridge lines in" in err
