"""The sans-I/O rule, checked statically: no sans-I/O module reaches ``asyncio``, ``socket`` or
``ssl``, neither by its own imports nor through any module of the package it imports.

Which modules are sans-I/O, so that a new module cannot silently escape the check:

- every module under ``socks/`` and ``tor/`` is sans-I/O, unless it is named in :data:`IO`
  (``tor/channel.py``) or declares itself glue by a module docstring that begins with
  "asyncio glue";
- every other module of the package must be named in :data:`SANS_IO` or :data:`IO`; a module in
  neither list (a new one) fails :func:`test_every_module_is_classified`, and a name left in a
  list after its module went fails :func:`test_lists_name_existing_modules`.

What counts as importing: what loading a module runs, i.e. the ``import`` / ``from … import``
statements outside function bodies (class bodies and module-level ``if`` / ``try`` run at
import time, so they count), except under ``if TYPE_CHECKING:``, which never runs. Imports
inside functions are lazy by design (``webtunnel_pt.__getattr__`` loads the library client only
when asked, so managed mode starts light) and are not followed into other modules; but a
sans-I/O module's own function bodies may not import ``asyncio``, ``socket`` or ``ssl`` either.
Importing ``webtunnel_pt.a.b`` also runs the ``__init__`` of ``webtunnel_pt`` and
``webtunnel_pt.a``, so those are followed too; relative imports are resolved against the
importing module. Third-party packages (h11, cryptography)
are not followed here: the runtime check in tests/integration/test_sans_io_runtime.py imports
every sans-I/O module in a fresh interpreter and looks at ``sys.modules``.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

import webtunnel_pt

PACKAGE = "webtunnel_pt"
ROOT = Path(webtunnel_pt.__file__).parent
FORBIDDEN = frozenset({"asyncio", "socket", "ssl"})

#: Sans-I/O modules outside socks/ and tor/ (names relative to the package).
SANS_IO = frozenset(
    {
        "errors",
        "deadlines",
        "pt.env",
        "pt.args",
        "pt.messages",
        "webtunnel.bridge",
        "webtunnel.upgrade",
        "webtunnel.servernames",
        "outbound.utls",
        "outbound.certnames",
        "outbound.tls_direct_state",
        "outbound.proxy",
        "outbound.proxy_uri",
        "outbound.http_connect",
        "probe.report",
        "probe.output",
        "probe.table",
        "probe.bridge_list",
        "probe.order",
        "probe.consensus",
        "front.__init__",
        "front.values",
        "front.arguments",
        "front.torrc",
        "front.options",
        "front.internal",
        "front.socks_reply",
        "front.socks_proto",
        "front.progress",
        "front.http_get",
        "front.exit_codes",
    }
)
#: Modules outside socks/ and tor/ that may do I/O: asyncio glue, process life cycle, CLI.
#: logs.py is here although it opens no socket: it writes stdout and log files from threads.
IO = frozenset(
    {
        "__init__",
        "__main__",
        "cli",
        "logs",
        "stop_signal",
        "pt.__init__",
        "pt.listener",
        "pt.managed",
        "webtunnel.__init__",
        "webtunnel.dial",
        "webtunnel.outer_tls",
        "webtunnel.relay",
        "webtunnel.client",
        "outbound.__init__",
        "outbound.resolver",
        "outbound.proxy_dial",
        "outbound.tls_profiles",
        "outbound.tls_transport",
        "outbound.ssl_socket_transport",
        "probe.__init__",
        "probe.run",
        "probe.batch",
        "tor.bridge_link",
        "tor.channel",
        "tor.channel_circuit",
        "tor.circuit_pool",
        "tor.conflux_set",
        "tor.client",
        "tor.live_circuit",
        "tor.stream_io",
        "tor.stream_transport",
        "tor.dircache",
        "tor.dirmgr",
        "tor.inner_tls",
        "front.session",
        "front.socks_front",
        "front.fetch",
        "front.tls_stream",
        "front.commands",
    }
)
#: Modules of IO that do file I/O only: run in a thread by their callers, they must not reach
#: ``asyncio``, ``socket`` or ``ssl`` either (checked like the sans-I/O ones).
FILE_IO_ONLY = frozenset({"tor.dircache"})
#: Subpackages whose every module is sans-I/O unless its docstring begins with "asyncio glue".
SANS_IO_PACKAGES = ("socks", "tor")
GLUE_MARKER = "asyncio glue"


def _all_modules() -> dict[str, Path]:
    """Relative dotted name -> file, e.g. ``"pt.env"``; packages appear as ``"pt.__init__"``."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        found[".".join(path.relative_to(ROOT).with_suffix("").parts)] = path
    return found


MODULES = _all_modules()


def _module_name(relative: str) -> str:
    """``"pt.__init__"`` -> ``"webtunnel_pt.pt"``; ``"pt.env"`` -> ``"webtunnel_pt.pt.env"``."""
    parts = [PACKAGE, *relative.split(".")]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


NAME_TO_FILE = {_module_name(relative): path for relative, path in MODULES.items()}


def _is_glue(path: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return docstring.lstrip().lower().startswith(GLUE_MARKER)


def sans_io_modules() -> list[str]:
    """The dotted names of every sans-I/O module, by the rules above."""
    chosen = set()
    for relative, path in MODULES.items():
        top = relative.split(".")[0]
        if relative in SANS_IO:
            chosen.add(relative)
        elif (
            top in SANS_IO_PACKAGES
            and "." in relative
            and relative not in IO
            and not _is_glue(path)
        ):
            chosen.add(relative)
    return sorted(_module_name(relative) for relative in chosen)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, *, in_functions: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of ``tree``, skipping ``if TYPE_CHECKING:`` bodies and, unless
    ``in_functions``, function bodies."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if not in_functions and isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        ):
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b", "a.b.c"]``: importing a module runs its packages first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def direct_imports(module: str, *, in_functions: bool = False) -> frozenset[str]:
    """Absolute names of the modules loading ``module`` imports (their packages included);
    with ``in_functions``, also those its function bodies import."""
    path = NAME_TO_FILE[module]
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in _import_nodes(tree, in_functions=in_functions):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
            continue
        if node.level:
            base = module.split(".")
            if not is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join([*base, node.module] if node.module else base)
        else:
            assert node.module is not None
            origin = node.module
        names.update(_with_parents(origin))
        for alias in node.names:
            candidate = f"{origin}.{alias.name}"
            if candidate in NAME_TO_FILE:  # `from webtunnel_pt.pt import env` imports a module
                names.add(candidate)
    return frozenset(names)


def forbidden_paths(module: str) -> list[list[str]]:
    """Import chains from ``module`` to a forbidden module, one per forbidden module reached."""
    chains = [
        [module, name]
        for name in sorted(direct_imports(module, in_functions=True) - direct_imports(module))
        if name.split(".")[0] in FORBIDDEN
    ]
    seen = {module}
    queue = [[module]]
    while queue:
        chain = queue.pop(0)
        for name in sorted(direct_imports(chain[-1])):
            if name.split(".")[0] in FORBIDDEN:
                chains.append([*chain, name])
            elif name in NAME_TO_FILE and name not in seen:
                seen.add(name)
                queue.append([*chain, name])
    return chains


def test_every_module_is_classified() -> None:
    unclassified = [
        relative
        for relative in MODULES
        if relative.split(".")[0] not in SANS_IO_PACKAGES or "." not in relative
        if relative not in SANS_IO | IO
    ]
    assert unclassified == [], "add each new module to SANS_IO or IO in tests/unit/test_sans_io.py"


def test_lists_name_existing_modules() -> None:
    stale = sorted((SANS_IO | IO) - set(MODULES))
    assert stale == []


def test_no_module_is_in_both_lists() -> None:
    assert SANS_IO & IO == set()


def test_the_rule_covers_the_known_cores() -> None:
    chosen = sans_io_modules()
    for expected in (
        "webtunnel_pt.errors",
        "webtunnel_pt.socks.server",
        "webtunnel_pt.tor.cells",
        "webtunnel_pt.tor.path",
        "webtunnel_pt.webtunnel.upgrade",
    ):
        assert expected in chosen
    assert "webtunnel_pt.tor.channel" not in chosen
    assert "webtunnel_pt.pt.listener" not in chosen


@pytest.mark.parametrize("module", sans_io_modules())
def test_sans_io_module_imports_no_io(module: str) -> None:
    assert forbidden_paths(module) == []


def test_file_io_only_modules_are_io() -> None:
    assert FILE_IO_ONLY <= IO


@pytest.mark.parametrize("module", sorted(_module_name(m) for m in FILE_IO_ONLY))
def test_file_io_only_module_imports_no_network(module: str) -> None:
    assert forbidden_paths(module) == []


def test_the_check_sees_a_transitive_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain through another module of the package is found, function bodies included."""
    fake = {
        "webtunnel_pt.webtunnel.upgrade": frozenset({"webtunnel_pt.errors"}),
        "webtunnel_pt.errors": frozenset({"webtunnel_pt.logs"}),
        "webtunnel_pt.logs": frozenset({"ssl"}),
    }
    monkeypatch.setattr(
        sys.modules[__name__],
        "direct_imports",
        lambda module, in_functions=False: fake.get(module, frozenset()),
    )
    assert forbidden_paths("webtunnel_pt.webtunnel.upgrade") == [
        ["webtunnel_pt.webtunnel.upgrade", "webtunnel_pt.errors", "webtunnel_pt.logs", "ssl"]
    ]


def test_import_parsing_follows_every_form() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import socket as s\n"
        "from ..errors import X\n"
        "try:\n"
        "    from . import env\n"
        "except ImportError:\n"
        "    pass\n"
        "if TYPE_CHECKING:\n"
        "    import asyncio\n"
        "def f():\n"
        "    from ssl import SSLError\n"
    )
    tree = ast.parse(source)

    def names(nodes: list[ast.Import | ast.ImportFrom]) -> list[str]:
        return [
            node.names[0].name if isinstance(node, ast.Import) else f"{node.level}:{node.module}"
            for node in nodes
        ]

    assert names(_import_nodes(tree, in_functions=False)) == [
        "0:typing",
        "socket",
        "2:errors",
        "1:None",
    ]
    assert names(_import_nodes(tree, in_functions=True))[-1] == "0:ssl"


def test_a_lazy_import_of_ssl_in_a_core_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(module: str, in_functions: bool = False) -> frozenset[str]:
        return frozenset({"ssl"}) if in_functions else frozenset()

    monkeypatch.setattr(sys.modules[__name__], "direct_imports", fake)
    assert forbidden_paths("webtunnel_pt.webtunnel.upgrade") == [
        ["webtunnel_pt.webtunnel.upgrade", "ssl"]
    ]
