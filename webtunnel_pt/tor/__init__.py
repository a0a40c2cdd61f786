"""The Tor protocols spoken by this client itself (tor-link.md): the built-in mode.

Sans-I/O cores (no asyncio, socket or ssl imports; feed them bytes, read events)::

    cells.py         cells, VERSIONS, NETINFO, DESTROY, relay payloads (§3, §4, §7.1)
    certs.py         CERTS cell: Tor Ed25519 certs, RSA cross-cert, identity verification (§4.2)
    link_handshake.py  client link handshake VERSIONS -> CERTS -> NETINFO as a state machine (§4)
    kdf.py           KDF-TOR (§5)
    onionskin.py     CREATE_FAST / CREATED_FAST (§5)
    ntor.py          the ntor handshake of CREATE2 / EXTEND2, client side (§6)
    linkspec.py      EXTEND2 link specifiers: IPv4, IPv6, RSA and Ed25519 ids (§7.4)
    relay_crypto.py  AES-128-CTR + running SHA-1 per hop (§7.2, §7.3)
    circuit.py       circuits: CREATE_FAST/CREATE2, EXTEND2, streams, teardown (§4.5, §5-§9)
    circuit_events.py  what a circuit reports: CircuitOpen, StreamData, CircuitClosed, ...
    circuit_flow.py  circuit windows per hop and authenticated SENDMEs (§8.4, prop 289)
    circuit_streams.py  stream ids, stream windows, half-closed streams (§8)
    conflux.py       conflux (prop 329): LINK/LINKED/SWITCH bodies, the in-order sequencer
    conflux_leg.py   one circuit's part in a conflux set: LINKED checks, routing to the set
    relay_msgs.py    CREATE2/EXTEND2/BEGIN/CONNECTED/END/RESOLVED/SENDME bodies (§6-§8)
    directory.py     HTTP/1.0 over a directory stream and the bridge server descriptor (§10)
    descriptor_sig.py  the server descriptor's Ed25519 and RSA signatures (dir-spec §2.1.1)
    crosscert.py     the descriptor's ntor-onion-key-crosscert, before its ntor key is trusted
    netdoc.py        network-document tokenizer: keyword lines, objects, offsets (dir-spec §1.2)
    authorities.py   the built-in v3 directory authorities and DirAuthority lines (dir-spec §3)
    keycert.py       authority key certificates: parse, signatures, validity (dir-spec §3.1)
    docfields.py     field grammars shared by consensus and microdescs: base64, times, p, pr
    consensus.py     the microdesc consensus: header, dir-sources, footer, signed digests (§10.2)
    routerstatus.py  its router entries, r .. m, with shared s / pr / published values
    consensus_verify.py  authority signatures (> half of those configured) and liveness
    microdesc.py     microdescriptors, kept only when they hash to a consensus m line (§10.3)
    netview.py       the network view path selection reads: relays, weights, params
    path.py          middle and exit by consensus bandwidth weights; family, subnet, policy
    options.py       --dir-authority and --state-dir as every front end reads them
    dirreport.py     what a directory fetch yields: the view and its report

asyncio glue, and file I/O::

    dirmgr.py        fetch and verify the directory through the bridge (BEGIN_DIR only)
    dircache.py      the directory cache in the state directory, re-verified on every load
    inner_tls.py     inner TLS with the relay over the WebTunnel stream: context, random SNI
    channel.py       link handshake driver; the Channel, its one reader task and circuit registry
    channel_circuit.py  a circuit on a channel: its bounded inbox, events, BEGIN_DIR, dir fetch
    live_circuit.py  LiveCircuit: a multi-hop circuit with its driver task, streams, resolves
    stream_io.py     a stream as an asyncio-style reader/writer, SENDMEs as the application reads
    stream_transport.py  a stream as an asyncio Transport: start_tls to the destination
    circuit_pool.py  3-hop ntor builds, retries, reuse until dirty, isolation, pre-built circuits
    conflux_set.py   two legs to one exit, linked (prop 329), or a plain circuit as fallback
    bridge_link.py   bridge line -> verified channel, descriptor and ntor key; failover
    client.py        TorClient: bootstrap with progress, open_connection, resolve

Importing this package loads nothing heavy; ``cryptography`` is imported by the modules that
need it.
"""
