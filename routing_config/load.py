"""routing.yaml read and validated: every problem reported as ``path: message (line N)``.

The file is parsed once into frozen models (routing_config/schema.py) and swapped whole by its
readers; nothing edits a config in place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from routing_config.checks import Loc
from routing_config.errors import ConfigError, ConfigIssue
from routing_config.schema import RoutingConfig
from routing_config.yaml_syntax import describe_yaml_error

__all__ = ["LoadedConfig", "load_config", "parse_config"]


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: RoutingConfig
    revision: str  # first 12 hex chars of sha256 of the file bytes; tags every response
    text: str


def load_config(path: str | Path) -> LoadedConfig:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        # Same error type as a bad file, so the reload loop has one thing to catch.
        raise ConfigError([ConfigIssue(str(path), f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), "not valid UTF-8")], str(path)) from exc
    try:
        return _parse(text, data)
    except ConfigError as exc:
        raise ConfigError(exc.issues, str(path)) from None


def parse_config(text: str) -> LoadedConfig:
    return _parse(text, text.encode("utf-8"))


def _parse(text: str, raw: bytes) -> LoadedConfig:
    data, lines = _load_yaml(text)
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else type(data).__name__
        raise ConfigError([ConfigIssue("<root>", f"must be a mapping of keys, got {kind}")])
    try:
        config = RoutingConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_issue_from_pydantic(err, lines) for err in exc.errors()]) from None
    return LoadedConfig(config=config, revision=hashlib.sha256(raw).hexdigest()[:12], text=text)


LineMap = dict[tuple[str, ...], int]


def _load_yaml(text: str) -> tuple[Any, LineMap]:
    """Parse YAML once, keeping the node tree so key paths can be mapped to line numbers."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: LineMap = {}
        duplicates: list[ConfigIssue] = []
        _record_lines(node, (), lines, duplicates)
        if duplicates:
            # PyYAML silently keeps the last duplicate; an operator editing weights would not
            # notice that their first entry is ignored.
            raise ConfigError(duplicates)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        problem, line = describe_yaml_error(exc, text)
        raise ConfigError([ConfigIssue("yaml", problem, line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("yaml", str(exc))]) from None
    finally:
        loader.dispose()


def _record_lines(
    node: yaml.Node, path: Loc, lines: LineMap, duplicates: list[ConfigIssue]
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if _line_key(child) in lines:
                duplicates.append(ConfigIssue(_format_path(child), "duplicate key", line))
            lines[_line_key(child)] = line
            _record_lines(value_node, child, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            lines[_line_key(child)] = item.start_mark.line + 1
            _record_lines(item, child, lines, duplicates)


def _line_key(loc: Loc) -> tuple[str, ...]:
    # pydantic reports a dict key as the key itself, which YAML may have typed as an int or
    # float; compare as text. "[key]" marks an error in a key rather than its value.
    return tuple(str(part) for part in loc if part != "[key]")


_FRIENDLY = {"extra_forbidden": "unknown key", "missing": "required key missing"}


def _issue_from_pydantic(err: Any, lines: LineMap) -> ConfigIssue:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind in _FRIENDLY:
        message = _FRIENDLY[kind]
    elif kind == "value_error":
        message = str(err["ctx"]["error"])  # drop pydantic's "Value error, " prefix
    else:
        message = err["msg"]
        if kind == "string_type" and isinstance(err.get("input"), int | float | bool):
            message += f" (got {err['input']!r}; quote it in YAML)"
    return ConfigIssue(_format_path(loc), message, _line_for(loc, lines))


def _line_for(loc: Loc, lines: LineMap) -> int | None:
    # A missing key has no line of its own: point at its closest ancestor that exists.
    key = _line_key(loc)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None


def _format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":
            out += " (key)"
        elif isinstance(part, int) and not (i + 1 < len(loc) and loc[i + 1] == "[key]"):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
