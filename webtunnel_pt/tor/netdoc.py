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
- The document holds nothing but printable ASCII (0x20-0x7E), tab and newline (dir-spec
  §1.2: ArgumentChar is "any graphical printing ASCII character", WS is spaces and tabs);
  refusing the rest keeps the arguments plain ``str`` with no decoding choices.
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
for each item), and the document size, its line count and its item count are bounded.
Sans-I/O.
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
#: Lines in one parse, objects' included (a microdescriptor batch is ~13 lines per relay): the
#: lines are split out at once, so a document of empty lines must not cost 8M list entries.
MAX_NETDOC_LINES = 1_000_000

#: Anything but printable ASCII, tab and newline: refused anywhere in a document.
_BAD_BYTE = re.compile(rb"[^\x20-\x7e\t\n]")
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
    bad = _BAD_BYTE.search(document)
    if bad is not None:
        line_no = document.count(b"\n", 0, bad.start()) + 1
        raise NetdocError(f"line {line_no}: byte {bad.group()!r} is not printable ASCII or tab")
    # The hot loop of every consensus parse: one C-level split, then per line a decode, a
    # split and a keyword check; no regex and no helper call unless an object follows.
    if document.count(b"\n") > MAX_NETDOC_LINES:
        raise NetdocError(f"network document has over {MAX_NETDOC_LINES} lines")
    lines = document.split(b"\n")
    count = len(lines) - 1  # the document ends with "\n": the last element is empty
    items: list[NetdocItem] = []
    index = pos = 0
    while index < count:
        line = lines[index]
        start, pos, index = pos, pos + len(line) + 1, index + 1
        if not line:
            continue
        words = line.decode("ascii").split()  # printable ASCII: splits on spaces and tabs
        if not line[:1].isalnum() or not words[0].replace("-", "").isalnum():
            raise NetdocError(f"line {index}: not a keyword line")
        if len(items) >= MAX_NETDOC_ITEMS:
            raise NetdocError(f"network document has over {MAX_NETDOC_ITEMS} items")
        obj = None
        if index < count and lines[index].startswith(_BEGIN_PREFIX):
            obj, index, pos = _read_object(lines, index, count, pos)
        items.append(NetdocItem(words[0], tuple(words[1:]), obj, start, pos))
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


def _read_object(
    lines: list[bytes], index: int, count: int, pos: int
) -> tuple[NetdocObject, int, int]:
    """Read the object whose BEGIN line is ``lines[index]``, at byte offset ``pos``; return it,
    the index of the line after its END line, and that line's offset. Messages number lines
    from 1, so line ``index`` is "line index + 1"."""
    match = _BEGIN_LINE.fullmatch(lines[index])
    if match is None:
        raise NetdocError(f"line {index + 1}: malformed object BEGIN line")
    label = match.group(1)
    end_line = _END_PREFIX + label + b"-----"
    pos += len(lines[index]) + 1
    body: list[bytes] = []
    while True:
        index += 1
        if index >= count:
            raise NetdocError(f"object {label.decode('ascii')!r} has no END line")
        line = lines[index]
        pos += len(line) + 1
        if line.startswith(_END_PREFIX):
            if line != end_line:
                raise NetdocError(f"line {index + 1}: object END label differs")
            break
        if _BASE64_LINE.fullmatch(line) is None:
            raise NetdocError(f"line {index + 1}: object body line is not base64")
        body.append(line)
    try:
        data = base64.b64decode(b"".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NetdocError(f"object {label.decode('ascii')!r}: bad base64: {exc}") from exc
    return NetdocObject(label=label.decode("ascii"), data=data), index + 1, pos
