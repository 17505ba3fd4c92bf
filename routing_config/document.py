"""Round-trip editing of routing.yaml: load keeping comments and layout, validate, write atomically.

Edits go through ruamel.yaml's round-trip mode so the operator's comments and layout survive, are
checked with the gateway's own parser before anything touches the disk, and land with an atomic
rename so a gateway polling the file never reads half of it. Every failure is a
``RoutingEditError`` whose lines say what was not written and why.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import CommentToken

from routing_config.errors import ConfigError, RoutingEditError
from routing_config.load import LoadedConfig, parse_config

__all__ = [
    "Document",
    "child_map",
    "parse_document",
    "read_document",
    "remove_key",
    "save_document",
    "validate_edit",
    "write_atomic",
]

# ruamel drops a `---` marker and any comments above it; they are kept aside and put back verbatim.
_DOCUMENT_HEADER = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\n)*---[ \t]*(?:#[^\n]*)?\n")


@dataclass(slots=True)
class Document:
    """A routing.yaml loaded for a round-trip edit."""

    header: str
    data: CommentedMap
    yaml: YAML
    crlf: bool

    def render(self) -> str:
        buffer = io.StringIO()
        self.yaml.dump(self.data, buffer)
        text = self.header + buffer.getvalue()
        return text.replace("\n", "\r\n") if self.crlf else text


def read_document(path: str) -> Document:
    try:
        raw = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise RoutingEditError(f"error: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RoutingEditError(f"error: {path} is not valid UTF-8") from None
    return parse_document(raw, path)


def parse_document(raw: str, path: str) -> Document:
    """``raw`` (the text of the routing document at ``path``, a file or a ConfigMap) for an edit."""
    crlf = "\r\n" in raw
    text = raw.replace("\r\n", "\n")
    match = _DOCUMENT_HEADER.match(text)
    header = match.group(0) if match else ""
    body = text[len(header) :]

    yaml = YAML()  # round-trip mode: keeps comments, key order, flow style and quoting
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line the operator wrote on one line
    try:
        data = yaml.load(body)
    except YAMLError as exc:
        messages = _syntax_messages(text, exc)
        raise RoutingEditError(
            f"error: {path} is not valid YAML:", *(f"  {m}" for m in messages)
        ) from None
    if not isinstance(data, CommentedMap):
        raise RoutingEditError(f"error: {path} is not a mapping of keys")
    mapping, sequence, offset = _guess_indent(data, body.splitlines())
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return Document(header=header, data=data, yaml=yaml, crlf=crlf)


def remove_key(data: CommentedMap, key: str) -> None:
    """Remove ``key`` and its value, keeping the comment lines above it.

    ruamel keeps the comments that precede a key as that key's own (its ``ca.items`` entry), so
    a plain ``pop`` takes the explanation written above a section away with the section (the
    shipped routing.yaml's notes on the rollout plan, lost at every promotion). They move to
    the next key, or after the last one, where they read the same.
    """
    if key not in data:
        return
    keys = list(data)
    entry = data.ca.items.get(key)
    above = list(entry[1]) if entry is not None and len(entry) > 1 and entry[1] else []
    # A scalar's trailing token holds its own end of line, then the comment lines below it,
    # which are about the next key.
    after = entry[2] if entry is not None and len(entry) > 2 else None
    if isinstance(after, CommentToken) and "\n" in after.value.rstrip("\n"):
        below = after.value.split("\n", 1)[1]
        above.append(CommentToken(below, after.start_mark, None))
    data.pop(key)
    if not above:
        return
    following = keys[keys.index(key) + 1 :]
    if following:
        slot = data.ca.items.setdefault(following[0], [None, [], None, None])
        slot[1] = [*above, *(slot[1] or [])]
    else:
        data.ca.end = [*above, *(data.ca.end or [])]


def _syntax_messages(text: str, exc: YAMLError) -> list[str]:
    """The gateway's own account of the error (the line of the mistake, as `validate` says it);
    ruamel's when only ruamel objects to the file."""
    try:
        parse_config(text)
    except ConfigError as config_error:
        return config_error.messages
    return [str(exc)]


def _guess_indent(data: CommentedMap, lines: list[str]) -> tuple[int, int, int]:
    """The file's own block indentation, so re-dumping does not re-indent untouched lines.

    ruamel emits one indentation for the whole document; it is read off the first nested block
    mapping and block sequence found (ruamel's own guesser mixes the two up).
    """
    found: dict[str, tuple[int, ...]] = {}

    def visit(node: Any) -> None:
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                key_col = node.lc.key(key)[1]
                if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
                    found.setdefault("map", (value.lc.col - key_col,))
                if isinstance(value, CommentedSeq) and value and not value.fa.flow_style():
                    line, col = value.lc.item(0)
                    dash = lines[line].rfind("-", 0, col)
                    found.setdefault("seq", (col - key_col, dash - key_col))
                visit(value)
        elif isinstance(node, CommentedSeq):
            for item in node:
                visit(item)

    visit(data)
    (mapping,) = found.get("map", (2,))
    sequence, offset = found.get("seq", (mapping + 2, mapping))
    return mapping, sequence, offset


def child_map(parent: CommentedMap, key: str, path: str, *, create: bool) -> CommentedMap:
    """``parent[key]`` as a mapping to edit; made empty when missing and ``create`` is set."""
    if key not in parent:
        if not create:
            raise RoutingEditError(f"error: {path} has no {key} section")
        parent[key] = CommentedMap()
    child = parent[key]
    if not isinstance(child, CommentedMap):
        raise RoutingEditError(f"error: {path}: {key} is not a mapping")
    return child


def save_document(path: str, text: str, change: str) -> LoadedConfig:
    """Validate ``text`` as the gateway would, then replace ``path`` atomically."""
    loaded = validate_edit(text, path, change)
    try:
        write_atomic(Path(path), text)
    except OSError as exc:
        raise RoutingEditError(f"error: cannot write {path}: {exc.strerror or exc}") from None
    return loaded


def validate_edit(text: str, path: str, change: str) -> LoadedConfig:
    """``text`` parsed as the gateway would; refused (nothing to be written) when invalid."""
    try:
        return parse_config(text)
    except ConfigError as exc:
        raise RoutingEditError(
            f"error: not written; {path} would become invalid with {change}:",
            *(f"  {m}" for m in exc.messages),
        ) from None


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same directory + fsync + rename, keeping the file mode.

    A reader sees the old file or the new one, never a truncated one, and a crash leaves the old
    file in place. A symlink is written through (its target replaced), not turned into a file.
    """
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600; the gateway may run as another user
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Persist the rename itself; not every platform lets a directory be opened for this.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
