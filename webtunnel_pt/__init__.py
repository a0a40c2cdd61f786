"""webtunnel-pt: a Tor pluggable-transport client for WebTunnel.

Python applications open a tunnel with :func:`open_webtunnel`, or Tor streams without a tor
binary with :class:`TorClient` (the built-in client, :mod:`webtunnel_pt.tor.client`); tor runs
the ``webtunnel-pt`` program as a managed proxy (see :mod:`webtunnel_pt.pt.managed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["BootstrapEvent", "TorClient", "__version__", "open_tunnel", "open_webtunnel"]

if TYPE_CHECKING:
    from webtunnel_pt.tor.client import BootstrapEvent, TorClient
    from webtunnel_pt.webtunnel.client import open_tunnel, open_webtunnel


def __getattr__(name: str) -> Any:
    # Imported lazily so that `webtunnel-pt` starts without loading what it does not use.
    if name in ("open_webtunnel", "open_tunnel"):
        from webtunnel_pt.webtunnel import client

        return getattr(client, name)
    if name in ("TorClient", "BootstrapEvent"):
        # The built-in Tor client loads cryptography: only when asked for.
        from webtunnel_pt.tor import client as tor_client

        return getattr(tor_client, name)
    raise AttributeError(name)
