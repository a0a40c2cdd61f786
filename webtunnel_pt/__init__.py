"""webtunnel-pt: a Tor pluggable-transport client for WebTunnel.

Python applications open a tunnel with :func:`open_webtunnel`; tor runs the ``webtunnel-pt``
program as a managed proxy (see :mod:`webtunnel_pt.pt.managed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "open_tunnel", "open_webtunnel"]

if TYPE_CHECKING:
    from webtunnel_pt.webtunnel.client import open_tunnel, open_webtunnel


def __getattr__(name: str) -> Any:
    # Imported lazily so that `webtunnel-pt` starts without loading what it does not use.
    if name in ("open_webtunnel", "open_tunnel"):
        from webtunnel_pt.webtunnel import client

        return getattr(client, name)
    raise AttributeError(name)
