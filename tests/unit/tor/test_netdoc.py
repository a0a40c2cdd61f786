"""The network-document tokenizer (dir-spec §1.2): byte-exact documents with their offsets,
mutations that must fail, and arbitrary input raising only the project's errors."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webtunnel_pt.errors import DirectoryError, NetdocError
from webtunnel_pt.tor import netdoc
from webtunnel_pt.tor.netdoc import NetdocItem, NetdocObject, parse_items, split_documents

KEY = bytes(range(40))
KEY_B64 = base64.b64encode(KEY)  # 56 characters: one body line

DOC = (
    b"network-status-version 3 microdesc\n"
    b"known-flags Authority\tExit  Fast \n"
    b"dir-key-certificate-version 3\n"
    b"dir-signing-key\n"
    b"-----BEGIN RSA PUBLIC KEY-----\n" + KEY_B64[:32] + b"\n" + KEY_B64[32:] + b"\n"
    b"-----END RSA PUBLIC KEY-----\n"
    b"x\n"
)


def test_items_byte_exact_with_offsets() -> None:
    items = parse_items(DOC)
    key_start = DOC.index(b"dir-signing-key")
    assert items == [
        NetdocItem("network-status-version", ("3", "microdesc"), None, 0, 35),
        NetdocItem("known-flags", ("Authority", "Exit", "Fast"), None, 35, 69),
        NetdocItem("dir-key-certificate-version", ("3",), None, 69, 99),
        NetdocItem(
            "dir-signing-key",
            (),
            NetdocObject("RSA PUBLIC KEY", KEY),
            key_start,
            DOC.index(b"x\n"),
        ),
        NetdocItem("x", (), None, len(DOC) - 2, len(DOC)),
    ]
    # The offsets tile the document: each item's bytes are exactly its lines.
    assert b"".join(DOC[i.start : i.end] for i in items) == DOC
    assert DOC[items[1].start : items[1].end] == b"known-flags Authority\tExit  Fast \n"


def test_empty_document_and_empty_object() -> None:
    assert parse_items(b"") == []
    doc = b"k\n-----BEGIN SIGNATURE-----\n-----END SIGNATURE-----\n"
    assert parse_items(doc) == [NetdocItem("k", (), NetdocObject("SIGNATURE", b""), 0, len(doc))]


def outside_items(doc: bytes, items: list[NetdocItem]) -> bytes:
    """The bytes of ``doc`` that no item covers; items must be in order and not overlap."""
    rest, pos = b"", 0
    for item in items:
        assert pos <= item.start < item.end
        rest, pos = rest + doc[pos : item.start], item.end
    return rest + doc[pos:]


def test_empty_lines_between_items_are_skipped() -> None:
    doc = b"\n\na 1\n\nb\n-----BEGIN X-----\nAAAA\n-----END X-----\n\n"
    items = parse_items(doc)
    assert items == [
        NetdocItem("a", ("1",), None, 2, 6),
        NetdocItem("b", (), NetdocObject("X", b"\0\0\0"), 7, len(doc) - 1),
    ]
    assert outside_items(doc, items) == b"\n\n\n\n"
    assert parse_items(b"\n\n") == []


def test_error_is_a_directory_error() -> None:
    assert issubclass(NetdocError, DirectoryError)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(b"keyword", id="no final newline"),
        pytest.param(b"a\nb", id="last line without newline"),
        pytest.param(b"a\r\n", id="carriage return"),
        pytest.param(b"a\n\n-----BEGIN X-----\n-----END X-----\n", id="blank before object"),
        pytest.param(b"a\n \n", id="line of a space"),
        pytest.param(b" a\n", id="leading space"),
        pytest.param(b"\ta\n", id="leading tab"),
        pytest.param(b"-a\n", id="keyword starts with dash"),
        pytest.param(b"a_b\n", id="underscore in keyword"),
        pytest.param(b"a,b\n", id="punctuation in keyword"),
        pytest.param(b"a b\x00\n", id="NUL in arguments"),
        pytest.param(b"a \xc3\xa9\n", id="UTF-8 in arguments"),
        pytest.param(b"a b\x7f\n", id="DEL in arguments"),
        pytest.param(b"a b\x0bc\n", id="vertical tab"),
        pytest.param(b"-----BEGIN X-----\nAAAA\n-----END X-----\n", id="object without item"),
        pytest.param(b"a\n-----BEGIN X-----\nAAAA\n", id="object without END"),
        pytest.param(b"a\n-----BEGIN X-----\nAAAA\n-----END Y-----\n", id="END label differs"),
        pytest.param(b"a\n-----BEGIN X-----\n-----END X-----x\n", id="junk after END"),
        pytest.param(b"a\n-----BEGIN X----\nAAAA\n-----END X-----\n", id="short BEGIN dashes"),
        pytest.param(b"a\n-----BEGIN  X-----\n-----END  X-----\n", id="double space label"),
        pytest.param(b"a\n-----BEGIN -----\n-----END -----\n", id="empty label"),
        pytest.param(b"a\n-----BEGIN X------\n-----END X------\n", id="label ends in dash"),
        pytest.param(b"a\n-----BEGIN X-----\nAAA\n-----END X-----\n", id="bad padding"),
        pytest.param(b"a\n-----BEGIN X-----\nAA*A\n-----END X-----\n", id="stray character"),
        pytest.param(b"a\n-----BEGIN X-----\nAAAA \n-----END X-----\n", id="space in body"),
        pytest.param(b"a\n-----BEGIN X-----\n\n-----END X-----\n", id="blank body line"),
        pytest.param(b"a\n-----BEGIN X-----\nA=AA\n-----END X-----\n", id="padding inside"),
        pytest.param(
            b"a\n-----BEGIN X-----\n-----END X-----\n-----BEGIN X-----\n-----END X-----\n",
            id="two objects",
        ),
    ],
)
def test_malformed_documents_raise(doc: bytes) -> None:
    with pytest.raises(NetdocError):
        parse_items(doc)


def test_size_bound() -> None:
    doc = b"a\n" * 50
    assert len(parse_items(doc, max_bytes=100)) == 50
    with pytest.raises(NetdocError, match="over 99"):
        parse_items(doc, max_bytes=99)


def test_item_count_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netdoc, "MAX_NETDOC_ITEMS", 3)
    assert len(parse_items(b"a\nb\nc\n")) == 3
    with pytest.raises(NetdocError, match="over 3 items"):
        parse_items(b"a\nb\nc\nd\n")


def test_line_count_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netdoc, "MAX_NETDOC_LINES", 4)
    assert len(parse_items(b"a\n\nb\nc\n")) == 3
    with pytest.raises(NetdocError, match="over 4 lines"):
        parse_items(b"a\n\n\n\n\n")


def test_error_messages_name_the_line() -> None:
    with pytest.raises(NetdocError, match="line 3: byte b'\\\\x00'"):
        parse_items(b"a\nb\nc \x00\n")
    with pytest.raises(NetdocError, match="line 2: not a keyword line"):
        parse_items(b"a\n b\n")
    with pytest.raises(NetdocError, match="line 4: object body line is not base64"):
        parse_items(b"a\n-----BEGIN X-----\nAAAA\nAA*A\n-----END X-----\n")
    with pytest.raises(NetdocError, match="line 3: object END label differs"):
        parse_items(b"a\n-----BEGIN X-----\n-----END Y-----\n")


def test_every_single_byte_mutation_raises_only_netdoc_errors() -> None:
    for i in range(len(DOC)):
        for value in (0x00, 0x0A, 0x20, 0x2D, 0x41, 0x80):
            mutated = DOC[:i] + bytes([value]) + DOC[i + 1 :]
            try:
                items = parse_items(mutated)
            except NetdocError:
                continue
            # Whatever still parses is covered by its items, but for empty lines.
            assert outside_items(mutated, items).strip(b"\n") == b""


def test_object_body_mutations_are_caught_or_change_the_data() -> None:
    body_start = DOC.index(KEY_B64[:32])
    for i in range(body_start, body_start + len(KEY_B64) + 1):
        mutated = DOC[:i] + b"*" + DOC[i + 1 :]
        with pytest.raises(NetdocError):
            parse_items(mutated)


def test_long_document_is_linear() -> None:
    """Many items and a long object in one pass (a quadratic rescan would take minutes)."""
    body = base64.b64encode(bytes(300_000))
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    doc = b"r a b\nm x\n" * 50_000 + b"sig\n-----BEGIN SIGNATURE-----\n" + lines
    doc += b"\n-----END SIGNATURE-----\n"
    items = parse_items(doc)
    assert len(items) == 100_001
    assert items[-1].obj == NetdocObject("SIGNATURE", bytes(300_000))


def test_split_documents() -> None:
    items = parse_items(b"onion-key\nid x\nonion-key\nonion-key\nfamily a b\n")
    docs = split_documents(items, "onion-key")
    assert [[i.keyword for i in d] for d in docs] == [
        ["onion-key", "id"],
        ["onion-key"],
        ["onion-key", "family"],
    ]
    assert docs[1][0].start == len(b"onion-key\nid x\n")
    assert split_documents([], "onion-key") == []
    with pytest.raises(NetdocError, match="'id'"):
        split_documents(items[1:], "onion-key")


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_netdoc_errors(data: bytes) -> None:
    try:
        items = parse_items(data)
    except NetdocError:
        return
    assert outside_items(data, items).strip(b"\n") == b""


_KEYWORDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,8}", fullmatch=True)
_ARGS = st.lists(st.from_regex(r"[\x21-\x7e]{1,6}", fullmatch=True), max_size=4)


@settings(max_examples=200)
@given(st.lists(st.tuples(_KEYWORDS, _ARGS, st.none() | st.binary(max_size=80)), max_size=8))
def test_generated_documents_round_trip(
    spec: list[tuple[str, list[str], bytes | None]],
) -> None:
    doc = b""
    for keyword, args, data in spec:
        doc += " ".join([keyword, *args]).encode() + b"\n"
        if data is not None:
            encoded = base64.b64encode(data)
            doc += b"-----BEGIN SOME LABEL-----\n"
            doc += b"".join(encoded[i : i + 64] + b"\n" for i in range(0, len(encoded), 64))
            doc += b"-----END SOME LABEL-----\n"
    items = parse_items(doc)
    assert [(i.keyword, list(i.args)) for i in items] == [(k, a) for k, a, _ in spec]
    assert [i.obj.data if i.obj else None for i in items] == [d for _, _, d in spec]
    assert b"".join(doc[x.start : x.end] for x in items) == doc
