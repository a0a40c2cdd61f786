"""WebTunnel itself: from a bridge line to a byte stream through the bridge's web server.

Sans-I/O cores::

    bridge.py     bridge line and argument validation -> BridgeConfig
    upgrade.py    the HTTP/1.1 upgrade client (h11), bytes behind the 101 kept
    servernames.py  servername= lists: lyrebird's rotation per list, a bounded registry

asyncio glue::

    dial.py       DNS, TCP (or an upstream proxy), outer TLS, upgrade, under one deadline
    outer_tls.py  the outer TLS handshake, the names it is checked against, the cert= pin
    relay.py      the byte relay: backpressure, half-close, idle limit
    client.py     the library API: open_webtunnel / open_tunnel
"""
