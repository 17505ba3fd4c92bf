"""The head-bytes wire format the gateway's data path speaks, in one place.

A response travels from a replica's socket to the client's as one ``Message``: its status, its
header lines as bytes (b"name: value\\r\\n" each, no status line, no blank line) and its body.
The proxy edits the lines with one regular expression instead of building a list per answer;
the server writes them out as they are. Requests to a replica are built here too, and checked:
a CR, LF or NUL inside a header would let one header become two on the replica's side.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from gateway.errors import BadRequest
from vocabulary.headers import MODEL_VERSION

# Header pairs as the ASGI server gives them: lower-case names, raw bytes.
Headers = list[tuple[bytes, bytes]]

# A replica's answer head larger than this is refused (the parser sets no limit of its own).
MAX_HEAD_BYTES = 64 * 1024
# A header that says where the body ends; without one, the body runs until the connection closes.
FRAMED = re.compile(rb"^(?:content-length|transfer-encoding)[ \t]*:", re.IGNORECASE | re.MULTILINE)
# The value of an X-Model-Version line, matched as b"\n" + head (see ``lines_named``).
MODEL_VERSION_LINE = re.compile(
    rb"\n" + MODEL_VERSION.encode() + rb"[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r", re.I
)


@dataclass(slots=True)
class Message:
    """One HTTP response as bytes: from a replica to the proxy, and from the proxy to a client."""

    status: int
    head: bytes  # header lines, b"name: value\r\n" each
    body: bytes

    @property
    def headers(self) -> Headers:
        """(lower-case name, value) pairs, parsed from ``head`` (not used on the hot path)."""
        return parse_head(self.head)


def parse_head(head: bytes) -> Headers:
    pairs = []
    for line in head.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            pairs.append((name.strip().lower(), value.strip(b" \t")))
    return pairs


def head_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Header pairs as header lines, the form of ``Message.head``."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def lines_named(names: Collection[bytes]) -> re.Pattern[bytes]:
    """A pattern for the whole header lines with one of ``names`` (lower-case), to drop with
    ``sub``. It anchors on the "\\n" that ends the line before, so match it against
    b"\\n" + head: a literal first character lets the regex engine skip ahead, where "^" in
    multiline mode is tried at every byte."""
    alternatives = b"|".join(re.escape(name) for name in sorted(names))
    return re.compile(rb"\n(?:" + alternatives + rb")[ \t]*:[^\r\n]*\r(?=\n)", re.IGNORECASE)


def request_bytes(start: bytes, headers: Headers, body: bytes) -> bytes:
    """A whole request: ``start`` (request line and host line), ``headers``, a content-length
    and the body. Refuses (BadRequest) a header that holds CR, LF or NUL."""
    lines = head_lines(headers)
    # Each line ends in the one CRLF head_lines wrote; any other CR or LF came from a header.
    count = len(headers)
    if lines.count(b"\n") != count or lines.count(b"\r") != count or b"\0" in lines:
        raise _bad_header(headers)
    return b"%s%scontent-length: %d\r\n\r\n%s" % (start, lines, len(body), body)


def _bad_header(headers: Headers) -> BadRequest:
    for name, value in headers:
        for char, shown in ((b"\r", "CR"), (b"\n", "LF"), (b"\0", "NUL")):
            if char in name or char in value:
                label = name.decode("latin-1").translate({13: "\\r", 10: "\\n", 0: "\\0"})
                place = "name" if char in name else "value"
                return BadRequest(f"header {label!r}: {shown} in its {place}; nothing was sent")
    return BadRequest("a header holds CR, LF or NUL; nothing was sent")
