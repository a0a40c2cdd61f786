"""The sans-I/O rule at run time: a fresh interpreter imports every sans-I/O module, and no
module of the package imports ``asyncio``, ``socket`` or ``ssl`` on the way. The static check
and the rules naming the sans-I/O modules are in tests/unit/test_sans_io.py.

A hook on ``sys.meta_path`` records, for each forbidden module loaded, the module whose code
ran the import. ``cryptography.x509`` loads ``email.utils``, which loads ``socket`` for a
host-name helper; nothing of ours uses it, so that one importer is allowed, by name, and any
other (a new dependency, a new stdlib path) fails the test until someone looks at it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.test_sans_io import FORBIDDEN, sans_io_modules

REPO = Path(__file__).resolve().parents[2]

#: (forbidden module, the module that imported it) pairs that come from dependencies.
ALLOWED_FOREIGN = {("socket", "email.utils")}

PROGRAM = """
import importlib, json, sys
FORBIDDEN = set(json.loads(sys.argv[1]))
loaded = []

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN and name not in sys.modules:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            importer = frame.f_globals.get("__name__", "?") if frame is not None else "?"
            loaded.append([name, importer])
        return None

sys.meta_path.insert(0, Spy())
for name in sys.argv[2:]:
    importlib.import_module(name)
print(json.dumps(loaded))
"""


def _imports_of_forbidden(*modules: str) -> set[tuple[str, str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(sorted(FORBIDDEN)), *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {(name, importer) for name, importer in json.loads(result.stdout)}


def test_importing_every_sans_io_module_loads_no_io_module() -> None:
    modules = sans_io_modules()
    assert "webtunnel_pt.errors" in modules
    assert "webtunnel_pt.tor.cells" in modules
    loaded = _imports_of_forbidden(*modules)
    ours = {pair for pair in loaded if pair[1].split(".")[0] == "webtunnel_pt"}
    assert ours == set()
    assert loaded - ALLOWED_FOREIGN == set()


def test_the_runtime_check_sees_an_import_of_ours() -> None:
    """Glue imported the same way is caught (the check can fail)."""
    loaded = _imports_of_forbidden("webtunnel_pt.webtunnel.relay")
    assert ("asyncio", "webtunnel_pt.webtunnel.relay") in loaded
