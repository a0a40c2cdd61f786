"""Bridge secrets the tests use, and every PT output they collected.

At the end of the session ``tests/conftest.py`` checks that no URL path or fingerprint
registered here appears in any PT output (stdout LOG lines, stderr, log files) of the run.
"""

from __future__ import annotations

SECRETS: set[str] = set()
PT_OUTPUTS: list[tuple[str, str]] = []  # (where, text)


def register_secret(*secrets: str) -> None:
    SECRETS.update(secret for secret in secrets if secret)


def record_output(where: str, text: str) -> None:
    PT_OUTPUTS.append((where, text))


def leaks() -> list[str]:
    found = []
    for where, text in PT_OUTPUTS:
        for secret in SECRETS:
            if secret in text:
                found.append(f"{secret!r} in {where}")
    return found
