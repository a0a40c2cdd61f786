"""How bytes leave this machine: DNS, upstream proxies and the outer TLS.

utls.py (S)       utls= names -> ClientHello profile
proxy.py (S)      TOR_PT_PROXY URIs and the proxy client handshakes
resolver.py       DNS lookups that never hold up a stop
proxy_dial.py     the TCP leg through an upstream proxy (no local DNS for the bridge)
tls_profiles.py   the outer TLS contexts: curl-like default, browser profiles
tls_transport.py  pyOpenSSL memory-BIO transport for the browser profiles
"""
