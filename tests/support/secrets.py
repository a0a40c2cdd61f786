"""Bridge secrets the tests use, and every PT output they collected.

At the end of the session ``tests/conftest.py`` checks that no URL path or fingerprint
registered here appears in any PT output of the run: stdout ``LOG`` lines, stderr and log
files of PT subprocesses, and every record the ``webtunnel_pt`` loggers emitted inside the
pytest process (at ``DEBUG``, tracebacks included).

Tests put a fresh random path segment in front of each bridge URL path
(:func:`secret_path`); :class:`SecretPathServer` drops that segment again before routing, so
the scripted server's paths (``/early``, ``/status/404``, ...) work behind it unchanged.
"""

from __future__ import annotations

import asyncio
import os
import string

from tests.support.upgrade_server import ScriptedWebServer

SECRETS: set[str] = set()
PT_OUTPUTS: list[tuple[str, str]] = []  # (where, text)
_ALPHABET = string.ascii_letters + string.digits


def register_secret(*secrets: str) -> None:
    SECRETS.update(secret for secret in secrets if secret)


def new_secret() -> str:
    """A fresh random secret (16 letters and digits, never fingerprint-shaped), registered."""
    secret = "".join(_ALPHABET[byte % len(_ALPHABET)] for byte in os.urandom(16))
    register_secret(secret)
    return secret


def secret_path(path: str = "/") -> str:
    """``path`` (starting with ``/``) behind a fresh registered secret segment."""
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    return f"/{new_secret()}{path}"


def strip_secret(path: str) -> str:
    """Undo :func:`secret_path`: drop a leading registered segment, if there is one."""
    first, slash, rest = path[1:].partition("/")
    if path.startswith("/") and first in SECRETS:
        return slash + rest if slash else "/"
    return path


class SecretPathServer(ScriptedWebServer):
    """The scripted web server, routing ``/<secret>/early`` as it routes ``/early``. A path
    without a registered secret in front gets 404, as a real front does for a wrong path: a
    PT that dropped or mangled the first segment must fail the test, not pass it."""

    async def _route(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stripped = strip_secret(path)
        await super()._route(stripped if stripped != path else "/status/404", reader, writer)


def record_output(where: str, text: str) -> None:
    PT_OUTPUTS.append((where, text))


def leaks() -> list[str]:
    found = []
    for where, text in PT_OUTPUTS:
        for secret in SECRETS:
            if secret in text:
                found.append(f"{secret!r} in {where}")
    return found
