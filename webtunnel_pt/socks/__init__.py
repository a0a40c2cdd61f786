"""SOCKS, both sides, as sans-I/O cores: used by the PT listener (tor is the client), by the
upstream-proxy dial (we are the client) and, next, by a SOCKS front for applications.

    codes.py      wire codes: replies, commands, address types, auth methods (RFC 1928, 1929)
    server.py     SOCKS5 / SOCKS4a server handshake; credentials handed over raw
    client.py     SOCKS5 / SOCKS4a client handshakes (the upstream-proxy dial)
"""
