"""How bytes leave this machine: DNS, upstream proxies and the outer TLS.

utls.py (S)           utls= names -> ClientHello profile
certnames.py (S)      a certificate's names against the name to verify (utls-authority=)
proxy_uri.py (S)      the TOR_PT_PROXY grammar -> ProxyConfig (parsed by pt/env.py)
http_connect.py (S)   the HTTP CONNECT client handshake (h11)
proxy.py (S)          which client handshake for which proxy (SOCKS ones: socks/client.py)
resolver.py           DNS lookups that never hold up a stop
proxy_dial.py         the TCP leg through an upstream proxy (no local DNS for the bridge)
tls_profiles.py       the outer TLS contexts: curl-like default, browser profiles
tls_transport.py      pyOpenSSL memory-BIO transport for the browser profiles
ssl_socket_transport.py  the default profile's TLS on a non-blocking SSLSocket (issue 16)
tls_direct_state.py (S)  its readiness bookkeeping and write queue
"""
