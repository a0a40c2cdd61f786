"""``webtunnel-pt probe``: check a bridge layer by layer, with the built-in Tor link.

Imported only when ``probe`` is asked for: it loads ``cryptography``, managed mode never does.
"""
