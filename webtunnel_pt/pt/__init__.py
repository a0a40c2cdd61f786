"""The Tor pluggable-transport side: what tor sees of webtunnel-pt in managed mode.

Sans-I/O cores::

    env.py        TOR_PT_* environment (TOR_PT_PROXY included) -> a frozen configuration
    args.py       the k=v;k=v bridge arguments tor packs into the SOCKS credentials
    messages.py   stdout lines (VERSION, CMETHOD, LOG, ...) checked against the spec grammar

asyncio glue::

    listener.py   the loopback SOCKS listener: one connection from tor's SOCKS request to a relay
    managed.py    the managed-proxy life cycle: environment -> listener -> CMETHOD -> stop
"""
