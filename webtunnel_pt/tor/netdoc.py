"""The generic tokenizer for Tor network documents (dir-spec §1.2 "Document meta-format", §1.3
"Signing documents"): consensuses, microdescriptors, key certificates all share it.

    parse_items(document)              -> list[NetdocItem]        every item, in order
    split_documents(items, keyword)    -> list[list[NetdocItem]]  one list per document

A document is a sequence of items. An item is a keyword line, optionally followed by one
object::

    Keyword [WS Argument]* NL
    -----BEGIN <label>-----  NL
    <base64 lines>           NL
    -----END <label>-----    NL

What this tokenizer accepts, strictly (a hostile bridge serves these documents, and a
signature covers the bytes as received, so nothing is normalised):

- Every line ends in ``"\\n"``; a final line without it is an error, as is ``"\\r"``.
- Empty lines between items are skipped (``Document ::= (Item | NL)+``); they belong to no
  item, so the items' spans cover everything but them.
- A keyword is ``[A-Za-z0-9][A-Za-z0-9-]*`` (dir-spec: KeywordStart, KeywordChar) and starts
  the line: no leading whitespace.
- Keyword lines hold nothing but printable ASCII (0x20-0x7E) and tab (dir-spec §1.2:
  ArgumentChar is "any graphical printing ASCII character", WS is spaces and tabs); refusing
  the rest keeps the arguments plain ``str`` with no decoding choices.
- Arguments are split on runs of spaces and tabs; trailing whitespace is tolerated (tor's
  tokenizer does), and yields no empty argument.
- An object's BEGIN and END labels are the same sequence of keywords joined by single spaces
  (none ends in a dash, so ``-----BEGIN X------`` is refused, not read as label ``X-``); its
  body lines are non-empty base64, decoded strictly (padding required, no stray
  characters).
- Item offsets (``start``/``end``) let a caller hash the exact signed span of a document
  (dir-spec §1.3: a signature covers the text from the document's first byte through the
  signature item's keyword line).

Parsing is one forward pass over the lines (linear time; a past bug rescanned from the start
for each item), and both the document size and the item count are bounded. Sans-I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from webtunnel_pt.errors import NetdocError

#: A bound for a whole document: a microdesc consensus of ~8,000 relays is ~3 MiB today and a
#: batch of their microdescriptors less; 16 MiB leaves room to grow and still bounds memory.
MAX_NETDOC_BYTES = 16 * 1024 * 1024
#: Items in one parse: ~8,000 relays x ~8 items each is ~64,000; a hostile document of tiny
#: items must not cost one Python object per two bytes of MAX_NETDOC_BYTES.
MAX_NETDOC_ITEMS = 250_000

_KEYWORD_LINE = re.compile(rb"([A-Za-z0-9][A-Za-z0-9-]*)((?:[ \t][\x20-\x7e\t]*)?)")
#: A label: alphanumeric words joined by single spaces or dashes, so it cannot end in a dash.
_BEGIN_LINE = re.compile(rb"-----BEGIN ([A-Za-z0-9]+(?:[ -][A-Za-z0-9]+)*)-----")
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]+")
_BEGIN_PREFIX = b"-----BEGIN "
_END_PREFIX = b"-----END "


@dataclass(frozen=True, slots=True)
class NetdocObject:
    """An object after a keyword line (dir-spec §1.2)."""

    label: str  #: "RSA PUBLIC KEY", "SIGNATURE", "ED25519 CERT", ...
    data: bytes  #: the base64-decoded body


@dataclass(frozen=True, slots=True)
class NetdocItem:
    """One item: a keyword line and its optional object, with where it sits in the document."""

    keyword: str
    args: tuple[str, ...]
    obj: NetdocObject | None
    start: int  #: byte offset of the item's keyword line in the document
    end: int  #: byte offset just past the item (past its object's END line and its "\n")


def parse_items(document: bytes, *, max_bytes: int = MAX_NETDOC_BYTES) -> list[NetdocItem]:
    """Tokenize ``document`` into its items, in order; raise :class:`NetdocError` on anything
    outside the meta-format described in the module docstring. An empty document, or one of
    empty lines, has no items."""
    if len(document) > max_bytes:
        raise NetdocError(f"network document is {len(document)} bytes, over {max_bytes}")
    if document and not document.endswith(b"\n"):
        raise NetdocError("network document does not end with a newline")
    items: list[NetdocItem] = []
    reader = _Lines(document)
    while not reader.done():
        start, line = reader.next_line()
        if not line:
            continue
        match = _KEYWORD_LINE.fullmatch(line)
        if match is None:
            raise NetdocError(f"line {reader.line_no}: not a keyword line")
        if len(items) >= MAX_NETDOC_ITEMS:
            raise NetdocError(f"network document has over {MAX_NETDOC_ITEMS} items")
        obj = None
        if reader.peek_startswith(_BEGIN_PREFIX):
            obj = _read_object(reader)
        items.append(
            NetdocItem(
                keyword=match.group(1).decode("ascii"),
                args=tuple(arg.decode("ascii") for arg in match.group(2).split()),
                obj=obj,
                start=start,
                end=reader.pos,
            )
        )
    return items


def split_documents(items: Sequence[NetdocItem], first_keyword: str) -> list[list[NetdocItem]]:
    """Split concatenated documents (several microdescriptors, several key certificates) at
    each item whose keyword is ``first_keyword``; the first item must be one."""
    documents: list[list[NetdocItem]] = []
    for item in items:
        if item.keyword == first_keyword:
            documents.append([item])
        elif not documents:
            raise NetdocError(f"document starts with {item.keyword!r}, not {first_keyword!r}")
        else:
            documents[-1].append(item)
    return documents


class _Lines:
    """A forward-only cursor over the ``"\\n"``-terminated lines of a document."""

    __slots__ = ("_data", "line_no", "pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0
        self.line_no = 0

    def done(self) -> bool:
        return self.pos >= len(self._data)

    def next_line(self) -> tuple[int, bytes]:
        """The next line without its newline, and its start offset. The document is known to
        end in a newline, so every line has one."""
        start = self.pos
        newline = self._data.index(b"\n", start)
        self.pos = newline + 1
        self.line_no += 1
        return start, self._data[start:newline]

    def peek_startswith(self, prefix: bytes) -> bool:
        return self._data.startswith(prefix, self.pos)


def _read_object(reader: _Lines) -> NetdocObject:
    _, begin = reader.next_line()
    match = _BEGIN_LINE.fullmatch(begin)
    if match is None:
        raise NetdocError(f"line {reader.line_no}: malformed object BEGIN line")
    label = match.group(1)
    end_line = _END_PREFIX + label + b"-----"
    body: list[bytes] = []
    while True:
        if reader.done():
            raise NetdocError(f"object {label.decode('ascii')!r} has no END line")
        _, line = reader.next_line()
        if line.startswith(_END_PREFIX):
            if line != end_line:
                raise NetdocError(f"line {reader.line_no}: object END label does not match")
            break
        if _BASE64_LINE.fullmatch(line) is None:
            raise NetdocError(f"line {reader.line_no}: object body line is not base64")
        body.append(line)
    try:
        data = base64.b64decode(b"".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NetdocError(f"object {label.decode('ascii')!r}: bad base64: {exc}") from exc
    return NetdocObject(label=label.decode("ascii"), data=data)
