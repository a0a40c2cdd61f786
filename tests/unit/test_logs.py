"""logs: redaction of secrets, the PT stdout writer and the two logging sinks."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from webtunnel_pt import logs
from webtunnel_pt.logs import (
    MAX_SECRETS,
    NOTICE,
    REDACTED,
    PtStdout,
    Redactor,
    configure_logging,
    severity_for,
)

SECRET = "D0CX0ykTaxzAgALpPd2hBMU6"
FINGERPRINT = "2B936CD554AF5B16678DE517CC3866AA11170BC4"

# -- Redactor ---------------------------------------------------------------------------------


def test_registered_secret_is_scrubbed_everywhere():
    redactor = Redactor()
    redactor.add(SECRET)
    text = f"GET /{SECRET} failed; retry /{SECRET}/x"
    assert redactor.scrub(text) == f"GET /{REDACTED} failed; retry /{REDACTED}/x"


@pytest.mark.parametrize("fingerprint", [FINGERPRINT, FINGERPRINT.lower()])
def test_any_fingerprint_is_scrubbed_without_registration(fingerprint):
    assert Redactor().scrub(f"bridge {fingerprint} down") == f"bridge {REDACTED} down"


@pytest.mark.parametrize("not_fp", [FINGERPRINT[:-1], FINGERPRINT + "A", "G" + FINGERPRINT[1:]])
def test_other_hex_runs_are_left_alone(not_fp):
    assert Redactor().scrub(f"x {not_fp} y") == f"x {not_fp} y"


def test_longest_secret_first():
    redactor = Redactor()
    redactor.add("abcd", "abcdefgh")
    assert redactor.scrub("/abcdefgh/abcd") == f"/{REDACTED}/{REDACTED}"


def test_short_secrets_are_ignored():
    redactor = Redactor()
    redactor.add("/", "ab", "abc")
    assert redactor.scrub("a/b abc") == "a/b abc"


def test_unsafe_redactor_keeps_everything():
    redactor = Redactor(unsafe=True)
    redactor.add(SECRET)
    text = f"/{SECRET} {FINGERPRINT}"
    assert redactor.scrub(text) == text


def test_oldest_secret_dropped_beyond_the_bound():
    redactor = Redactor()
    secrets = [f"secret-{i:05d}" for i in range(MAX_SECRETS + 1)]
    redactor.add(*secrets)
    assert redactor.scrub(secrets[0]) == secrets[0]
    assert redactor.scrub(secrets[1]) == REDACTED
    assert redactor.scrub(secrets[-1]) == REDACTED


# -- PtStdout ---------------------------------------------------------------------------------


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed_at: list[int] = []

    def flush(self) -> None:
        super().flush()
        self.flushed_at.append(len(self.getvalue()))


def test_pt_stdout_writes_whole_flushed_lines():
    stream = RecordingStream()
    out = PtStdout(stream)
    out.write_line("VERSION 1")
    out.write_line("CMETHODS DONE")
    assert stream.getvalue() == "VERSION 1\nCMETHODS DONE\n"
    # A flush after every line, each time at a line boundary.
    assert stream.flushed_at == [len("VERSION 1\n"), len("VERSION 1\nCMETHODS DONE\n")]


@pytest.mark.parametrize("line", ["VERSION 1\n", "a\nb", "a\rb", "\r"])
def test_pt_stdout_refuses_embedded_newlines(line):
    stream = RecordingStream()
    with pytest.raises(ValueError):
        PtStdout(stream).write_line(line)
    assert stream.getvalue() == ""


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_pt_stdout_goes_quiet_when_tor_is_gone():
    out = PtStdout(BrokenStream())
    out.write_line("VERSION 1")  # does not raise
    assert out.closed
    out.write_line("CMETHODS DONE")


def test_severity_for():
    assert severity_for(logging.CRITICAL) == "error"
    assert severity_for(logging.ERROR) == "error"
    assert severity_for(logging.WARNING) == "warning"
    assert severity_for(NOTICE) == "notice"
    assert severity_for(logging.INFO) == "info"
    assert severity_for(logging.DEBUG) == "debug"


# -- configure_logging ------------------------------------------------------------------------


class Sinks:
    """stderr and PT stdout captured in memory.

    configure_logging() reads sys.stderr when called, and pytest swaps sys.stderr back in
    at the start of each test phase, so the swap happens inside the test, in configure().
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.stderr = io.StringIO()
        self.stdout = io.StringIO()

    def configure(self, level: str, *, pt: bool = True, unsafe: bool = False, **kwargs) -> Redactor:
        self._monkeypatch.setattr(sys, "stderr", self.stderr)
        pt_stdout = PtStdout(self.stdout) if pt else None
        redactor = Redactor(unsafe=unsafe)
        configure_logging(level, redactor, pt_stdout=pt_stdout, **kwargs)
        return redactor


@pytest.fixture
def sinks(monkeypatch):
    yield Sinks(monkeypatch)
    root = logging.getLogger(logs.LOGGER_NAME)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate = True
    root.setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_record_reaches_stderr_and_tor_redacted(sinks):
    stderr, stdout = sinks.stderr, sinks.stdout
    redactor = sinks.configure("info")
    secret = SECRET + "-routed"
    redactor.add(secret)
    logging.getLogger("webtunnel_pt.webtunnel.dial").warning(
        'dial https://h.example/%s for %s "failed"', secret, FINGERPRINT
    )
    assert lines(stdout) == [
        rf'LOG SEVERITY=warning MESSAGE="dial https://h.example/{REDACTED} for {REDACTED} '
        r'\042failed\042"'
    ]
    (text,) = lines(stderr)
    assert "[WARNING] webtunnel_pt.webtunnel.dial:" in text
    assert text.endswith(f'dial https://h.example/{REDACTED} for {REDACTED} "failed"')
    assert secret not in stderr.getvalue() + stdout.getvalue()
    assert FINGERPRINT not in stderr.getvalue() + stdout.getvalue()


def test_levels_and_severities(sinks):
    stderr, stdout = sinks.stderr, sinks.stdout
    sinks.configure("debug")
    log = logging.getLogger("webtunnel_pt.test")
    log.debug("dbg")
    log.info("inf")
    log.log(NOTICE, "ntc")
    log.error("err")
    # Debug goes to the text sink only; tor gets info and above.
    assert lines(stdout) == [
        'LOG SEVERITY=info MESSAGE="inf"',
        'LOG SEVERITY=notice MESSAGE="ntc"',
        'LOG SEVERITY=error MESSAGE="err"',
    ]
    assert [line.split("] ")[0].split("[")[1] for line in lines(stderr)] == [
        "DEBUG",
        "INFO",
        "NOTICE",
        "ERROR",
    ]


def test_notice_level_filters_info(sinks):
    stderr, stdout = sinks.stderr, sinks.stdout
    sinks.configure("notice")
    log = logging.getLogger("webtunnel_pt.test")
    log.info("quiet")
    log.warning("loud")
    assert lines(stdout) == ['LOG SEVERITY=warning MESSAGE="loud"']
    assert len(lines(stderr)) == 1


def test_multiline_message_stays_one_log_line(sinks):
    stdout = sinks.stdout
    sinks.configure("info")
    logging.getLogger("webtunnel_pt.test").warning("one\ntwo \u00e9")
    assert lines(stdout) == [r'LOG SEVERITY=warning MESSAGE="one\012two \303\251"']


def test_tracebacks_are_dropped_when_redacting(sinks):
    stderr, stdout = sinks.stderr, sinks.stdout
    sinks.configure("info")
    try:
        raise ValueError(f"bad path {SECRET}-tb")
    except ValueError:
        logging.getLogger("webtunnel_pt.test").exception("failed")
    assert f"{SECRET}-tb" not in stderr.getvalue() + stdout.getvalue()
    assert lines(stdout) == ['LOG SEVERITY=error MESSAGE="failed"']


def test_unsafe_logging_keeps_secrets(sinks):
    stderr, stdout = sinks.stderr, sinks.stdout
    redactor = sinks.configure("info", unsafe=True)
    redactor.add(SECRET)
    logging.getLogger("webtunnel_pt.test").warning("path %s fp %s", SECRET, FINGERPRINT)
    assert lines(stdout) == [f'LOG SEVERITY=warning MESSAGE="path {SECRET} fp {FINGERPRINT}"']
    assert f"path {SECRET} fp {FINGERPRINT}" in stderr.getvalue()


def test_reconfiguring_replaces_handlers(sinks):
    stderr, stdout = sinks.stderr, sinks.stdout
    sinks.configure("info")
    sinks.configure("info")
    logging.getLogger("webtunnel_pt.test").warning("once")
    assert lines(stdout) == ['LOG SEVERITY=warning MESSAGE="once"']
    assert len(lines(stderr)) == 1


def test_log_file_sink(sinks, tmp_path):
    stderr = sinks.stderr
    path = tmp_path / "pt.log"
    sinks.configure("info", pt=False, log_file=str(path))
    logging.getLogger("webtunnel_pt.test").warning("to file %s", FINGERPRINT)
    for handler in logging.getLogger(logs.LOGGER_NAME).handlers:
        handler.flush()
    assert stderr.getvalue() == ""
    assert path.read_text(encoding="utf-8").rstrip().endswith(f"to file {REDACTED}")


def test_one_registration_for_a_bridge():
    """The listener and probe register a bridge the same way: URL, path, fingerprint."""
    redactor = Redactor()
    redactor.add_bridge(f"https://h.example/{SECRET}?q=12", f"/{SECRET}", FINGERPRINT)
    assert redactor.scrub(f"GET /{SECRET} HTTP/1.1") == f"GET /{REDACTED} HTTP/1.1"
    assert redactor.scrub(f"https://h.example:443/{SECRET}") == f"https://h.example:443/{REDACTED}"
    assert (
        redactor.scrub(f"https://h.example/{SECRET}?q=12")
        == f"https://h.example/{REDACTED}?{REDACTED}"
    )
    assert redactor.scrub(f"bridge {FINGERPRINT.lower()}") == f"bridge {REDACTED}"


def test_a_short_path_is_still_scrubbed_with_its_slash():
    redactor = Redactor()
    redactor.add_bridge("https://h.example/abc", "/abc")
    assert redactor.scrub("GET /abc x") == f"GET {REDACTED} x"


def test_redacted_is_defined_once():
    from webtunnel_pt.webtunnel import bridge

    assert bridge.REDACTED is logs.REDACTED
    assert not hasattr(logs, "REDACTOR")


def test_redactors_are_independent(sinks):
    """No global: a redactor only scrubs what was registered with it."""
    first = sinks.configure("info")
    first.add(SECRET + "-first")
    other = Redactor()
    assert other.scrub(SECRET + "-first") == SECRET + "-first"
    logging.getLogger("webtunnel_pt.test").warning("x %s", SECRET + "-first")
    assert lines(sinks.stdout) == [f'LOG SEVERITY=warning MESSAGE="x {REDACTED}"']
