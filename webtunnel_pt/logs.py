"""Logging: PT ``LOG`` lines to tor, a text log to stderr or a file, and redaction of secrets.

Two sinks share one logger tree (``webtunnel_pt.*``):

- :class:`PtStdout` owns stdout, the control channel to tor. Every line is written whole and
  flushed at once; records at ``info`` and above also become ``LOG`` lines there.
- A text handler (stderr by default, ``--log-file`` otherwise) at the selected level.

Secrets are the bridge URL path and fingerprints. Messages are written without them in the
first place (see :meth:`BridgeConfig.describe`); the :class:`Redactor` is the safety net: it
scrubs every registered secret and anything shaped like a fingerprint unless unsafe logging was
asked for. There is one per process: the command line creates it, hands it to
:func:`configure_logging` (whose :class:`RedactingFilter` runs it on each emitted record, never
on the data path) and to whatever learns secrets (the SOCKS listener, ``probe``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from typing import Final, TextIO
from urllib.parse import urlsplit

from webtunnel_pt.pt import messages as pt_messages

NOTICE: Final = 25
logging.addLevelName(NOTICE, "NOTICE")
LOGGER_NAME = "webtunnel_pt"
LEVELS: Final = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "notice": NOTICE,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
REDACTED: Final = "[scrubbed]"
_FINGERPRINT = re.compile(r"\b[0-9A-Fa-f]{40}\b")
#: Secrets registered at most; older ones are dropped first (one per distinct bridge URL).
MAX_SECRETS = 1024
#: Shorter strings (such as "/") would scrub harmless text and protect nothing.
MIN_SECRET_CHARS = 4


def severity_for(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= NOTICE:
        return "notice"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class PtStdout:
    """The PT's stdout: one writer, whole lines, flushed each time, safe across threads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self.closed = False

    def write_line(self, line: str) -> None:
        if "\n" in line or "\r" in line:
            raise ValueError("PT stdout lines must be single lines")
        with self._lock:
            if self.closed:
                return
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                # tor went away; nobody is left to read. Stop writing, keep running to shut down.
                self.closed = True


class Redactor:
    """Remembers secrets and removes them from text; ``unsafe`` keeps everything."""

    def __init__(self, unsafe: bool = False) -> None:
        self.unsafe = unsafe
        self._secrets: dict[str, None] = {}
        self._lock = threading.Lock()

    def add_bridge(self, url: str, request_target: str, fingerprint: str | None = None) -> None:
        """Register one bridge's secrets: the path of its ``url=`` as written and as requested,
        the URL's query, and its fingerprint. A path is registered without its leading ``/``
        (a URL then reads ``https://host/[scrubbed]``) unless that leaves it too short."""
        parts = urlsplit(url)
        paths = (parts.path, request_target)
        forms = [p.lstrip("/") if len(p.lstrip("/")) >= MIN_SECRET_CHARS else p for p in paths]
        self.add(*forms, parts.query, *([fingerprint] if fingerprint else []))

    def add(self, *secrets: str) -> None:
        """Register secrets found on the way (a relay's identity keys)."""
        if self.unsafe:
            return
        with self._lock:
            for secret in secrets:
                if len(secret) >= MIN_SECRET_CHARS:
                    self._secrets[secret] = None
            while len(self._secrets) > MAX_SECRETS:
                del self._secrets[next(iter(self._secrets))]

    def scrub(self, text: str) -> str:
        if self.unsafe:
            return text
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _FINGERPRINT.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self._redactor.scrub(message)
        record.args = None
        if record.exc_info and not self._redactor.unsafe:
            record.exc_text = None
            record.exc_info = None
        return True


class PtLogHandler(logging.Handler):
    """Turns records into ``LOG SEVERITY=... MESSAGE=...`` lines for tor."""

    def __init__(self, stdout: PtStdout, level: int) -> None:
        super().__init__(level)
        self._stdout = stdout

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._stdout.write_line(
                pt_messages.log(severity_for(record.levelno), self.format(record))
            )
        except Exception:  # pragma: no cover - logging must never kill the program
            self.handleError(record)


#: A log may hold what only unsafe logging shows (bridge paths, fingerprints): owner only.
LOG_FILE_MODE = 0o600


def _open_private_log(path: str) -> TextIO:
    """Append to ``path``, creating it readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, LOG_FILE_MODE)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


def configure_logging(
    level_name: str,
    redactor: Redactor,
    *,
    log_file: str | None = None,
    pt_stdout: PtStdout | None = None,
) -> None:
    """Set up the logger tree once per process; every record passes through ``redactor``."""
    level = LEVELS[level_name]
    root = logging.getLogger(LOGGER_NAME)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    root.propagate = False
    # asyncio reports resource trouble (e.g. accept() out of descriptors) through its logger:
    # it must reach tor as a LOG line, not stderr as a traceback.
    asyncio_logger = logging.getLogger("asyncio")
    for handler in list(asyncio_logger.handlers):
        asyncio_logger.removeHandler(handler)
    asyncio_logger.setLevel(max(level, logging.WARNING))
    asyncio_logger.propagate = False
    redacting = RedactingFilter(redactor)
    text: logging.Handler
    if log_file:
        text = logging.StreamHandler(_open_private_log(log_file))
    else:
        text = logging.StreamHandler(sys.stderr)
    text.setFormatter(
        logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    text.addFilter(redacting)
    root.addHandler(text)
    asyncio_logger.addHandler(text)
    if pt_stdout is not None:
        pt_handler = PtLogHandler(pt_stdout, max(level, logging.INFO))
        pt_handler.addFilter(redacting)
        root.addHandler(pt_handler)
        asyncio_logger.addHandler(pt_handler)
