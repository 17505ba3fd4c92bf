"""The operator CLI: ``streamflow validate | diff | set-weights | switch | status | serve``.

Edits go through ruamel.yaml's round-trip mode so the operator's comments and layout survive, are
checked with the gateway's own parser before anything touches the disk, and land with an atomic
rename so a gateway polling the file never reads half of it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from gateway.config import ConfigError, LoadedConfig, RoutingConfig, load_config, parse_config
from gateway.routing import expected_shares, moved_share

__all__ = ["CommandError", "build_parser", "fetch_routing", "format_status", "main"]

STATUS_TIMEOUT_S = 3.0
# Same variable the gateway reads (GatewaySettings.routing_file), so inside a gateway container
# the CLI edits the file the gateway serves without repeating --file.
ROUTING_FILE_ENV = "GATEWAY_ROUTING_FILE"
METRICS_DIR_ENV = "GATEWAY_METRICS_DIR"


class CommandError(Exception):
    """A failure reported on stderr line by line; ``code`` becomes the exit status."""

    def __init__(self, *lines: str, code: int = 1) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code


# --- validate -----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    print(f"ok: {args.file} ({_summary(loaded)})")
    return 0


def _load(path: str) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(f"invalid: {path}", *(f"  {m}" for m in exc.messages)) from None


def _summary(loaded: LoadedConfig) -> str:
    cfg = loaded.config
    parts = [f"revision {loaded.revision}", f"mode {cfg.mode}"]
    if cfg.mode == "blue_green" and cfg.blue_green is not None:
        parts.append(f"live {cfg.blue_green.live} = {cfg.live_version()}")
    parts.append(f"weights {_format_weights(cfg.weights())}")
    return ", ".join(parts)


def _format_weights(weights: Mapping[str, object]) -> str:
    return " ".join(f"{name}={weight}" for name, weight in weights.items()) or "(none)"


# --- diff ---------------------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace) -> int:
    new = _load(args.file)
    old = _load(args.against)
    print(f"{args.file} (revision {new.revision}) against {args.against} (revision {old.revision})")
    if new.revision == old.revision:
        print("no changes: the files are identical")
        return 0
    for line in diff_lines(old.config, new.config):
        print(line)
    return 0


def diff_lines(old: RoutingConfig, new: RoutingConfig) -> list[str]:
    """What switching from ``old`` to ``new`` would do to traffic, in operator terms."""
    lines = [_change_line("mode", old.mode, new.mode)]
    if old.blue_green is not None or new.blue_green is not None:
        lines.append(_change_line("blue/green live", _live_label(old), _live_label(new)))

    lines.append("traffic share of new requests:")
    before, after = expected_shares(old), expected_shares(new)
    rows = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None:
            delta = "added"
        elif now is None:
            delta = "removed"
        else:
            delta = f"{round((now - was) * 100):+d}" if now != was else "="
        rows.append((name, _percent(was), "->", _percent(now), delta))
    lines += _indent(_table(rows))

    sample = 20_000
    lines.append(f"sticky keys that would move (estimated from {sample} sample keys):")
    moves = moved_share(old, new, sample=sample)
    move_rows = [(src, "->", dst, f"{share * 100:.1f}%") for (src, dst), share in moves.items()]
    lines += _indent(_table(move_rows)) if move_rows else ["  none"]
    if new.mode == "canary" and (new.canary is None or new.canary.sticky_header is None):
        lines.append("  (no canary.sticky_header: each unkeyed request is routed by weight anew)")

    others = _other_changes(old, new)
    if others:
        lines.append("other changes:")
        lines += _indent(others)
    return lines


def _change_line(label: str, old: str, new: str) -> str:
    return f"{label}: {old} (unchanged)" if old == new else f"{label}: {old} -> {new}"


def _live_label(cfg: RoutingConfig) -> str:
    if cfg.blue_green is None:
        return "(no blue_green section)"
    return f"{cfg.blue_green.live} ({cfg.live_version()})"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:g}%"


# Keys the sections above already explain; everything else is listed as a plain change.
_EXPLAINED = ("mode", "canary.weights", "blue_green.live")


def _other_changes(old: RoutingConfig, new: RoutingConfig) -> list[str]:
    before = _flatten(old.model_dump(mode="json", exclude_none=True))
    after = _flatten(new.model_dump(mode="json", exclude_none=True))
    lines = []
    for path in sorted(before.keys() | after.keys()):
        if any(path == key or path.startswith(key + ".") for key in _EXPLAINED):
            continue
        was, now = before.get(path), after.get(path)
        if was != now:
            lines.append(f"{path}: {_render_value(was)} -> {_render_value(now)}")
    return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in value.items():
        flat.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _render_value(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


# --- editing routing.yaml -----------------------------------------------------------------------

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
        raise CommandError(f"error: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CommandError(f"error: {path} is not valid UTF-8") from None
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
        raise CommandError(f"error: {path} is not valid YAML:", f"  {exc}") from None
    if not isinstance(data, CommentedMap):
        raise CommandError(f"error: {path} is not a mapping of keys")
    mapping, sequence, offset = _guess_indent(data, body.splitlines())
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return Document(header=header, data=data, yaml=yaml, crlf=crlf)


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


def _child_map(parent: CommentedMap, key: str, path: str, *, create: bool) -> CommentedMap:
    if key not in parent:
        if not create:
            raise CommandError(f"error: {path} has no {key} section")
        parent[key] = CommentedMap()
    child = parent[key]
    if not isinstance(child, CommentedMap):
        raise CommandError(f"error: {path}: {key} is not a mapping")
    return child


def save_document(path: str, text: str, change: str) -> LoadedConfig:
    """Validate ``text`` as the gateway would, then replace ``path`` atomically."""
    try:
        loaded = parse_config(text)
    except ConfigError as exc:
        raise CommandError(
            f"error: not written; {path} would become invalid with {change}:",
            *(f"  {m}" for m in exc.messages),
        ) from None
    try:
        write_atomic(Path(path), text)
    except OSError as exc:
        raise CommandError(f"error: cannot write {path}: {exc.strerror or exc}") from None
    return loaded


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


# --- set-weights --------------------------------------------------------------------------------

_WEIGHT_VALUE = re.compile(r"[+-]?\d+")


def parse_assignment(text: str) -> tuple[str, int]:
    """argparse type for VERSION=PERCENT; range and sum are left to the config validation."""
    version, sep, value = text.partition("=")
    version, value = version.strip(), value.strip()
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} has no '=PERCENT' (e.g. v2.4.0=25)")
    if not version:
        raise argparse.ArgumentTypeError(f"{text!r} names no version (e.g. v2.4.0=25)")
    if not _WEIGHT_VALUE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{text!r}: PERCENT must be a whole number (e.g. 25)")
    return version, int(value)


def plan_weights(current: Mapping[str, object], given: Mapping[str, int]) -> dict[str, object]:
    """The new canary.weights: ``given`` applied, the rest of the 100 going where it must.

    If exactly one version not named has a weight, it takes whatever is left (possibly a bad
    number, which validation then reports). Otherwise the named weights must sum to 100 and any
    other version drops to 0.
    """
    total = sum(given.values())
    others = [name for name, w in current.items() if name not in given and _has_weight(w)]
    new: dict[str, object] = {**current, **given}
    if len(others) == 1:
        new[others[0]] = 100 - total
        return new
    if total != 100:
        if others:
            why = f"{', '.join(others)} also have weight, so none of them can take the rest"
        else:
            why = "no other version has weight to take the rest"
        raise CommandError(
            f"error: the given weights sum to {total}, not 100, and {why};",
            "  give every version that should keep a weight",
        )
    for name in others:
        new[name] = 0
    return new


def _has_weight(weight: object) -> bool:
    return isinstance(weight, int) and not isinstance(weight, bool) and weight > 0


def cmd_set_weights(args: argparse.Namespace) -> int:
    given: dict[str, int] = {}
    for version, weight in args.weights:
        if version in given:
            raise CommandError(f"error: {version} is given more than once", code=2)
        given[version] = weight

    doc = read_document(args.file)
    canary = _child_map(doc.data, "canary", args.file, create=True)
    weights = _child_map(canary, "weights", args.file, create=True)
    # YAML may have typed a version name as a number; match on text, write back the file's key.
    keys = {str(key): key for key in weights}
    old = {name: weights[key] for name, key in keys.items()}
    new = plan_weights(old, given)
    change = f"canary.weights {_format_weights(new)}"
    if new == old:
        print(f"unchanged: {args.file} already has {change}")
        return 0
    for name, weight in new.items():
        if old.get(name) != weight:  # only touch changed entries, so the rest keep their form
            weights[keys.get(name, name)] = weight

    loaded = save_document(args.file, doc.render(), change)
    print(f"{args.file}: canary.weights")
    rows = [(name, _render_value(old.get(name)), "->", str(weight)) for name, weight in new.items()]
    for line in _indent(_table(rows)):
        print(line)
    print(f"written (revision {loaded.revision})")
    if loaded.config.mode != "canary":
        print(
            f"warning: mode is {loaded.config.mode}; canary.weights take effect only with "
            "mode: canary",
            file=sys.stderr,
        )
    return 0


# --- switch -------------------------------------------------------------------------------------


def cmd_switch(args: argparse.Namespace) -> int:
    doc = read_document(args.file)
    section = _child_map(doc.data, "blue_green", args.file, create=False)
    old = section.get("live")
    if old == args.colour:
        version = section.get(args.colour)
        print(f"unchanged: {args.colour} ({version}) is already live in {args.file}")
        return 0
    section["live"] = args.colour

    loaded = save_document(args.file, doc.render(), f"blue_green.live {args.colour}")
    cfg = loaded.config
    old_label = f"{old} ({section.get(old)})" if old in ("blue", "green") else str(old)
    print(f"{args.file}: blue_green.live {old_label} -> {args.colour} ({cfg.live_version()})")
    print(f"written (revision {loaded.revision})")
    if cfg.mode != "blue_green":
        # The flag is saved either way; say so, so nobody believes traffic just moved.
        print(
            f"warning: mode is {cfg.mode}, so traffic still follows canary.weights; "
            "blue_green.live takes effect once mode is blue_green",
            file=sys.stderr,
        )
    return 0


def cmd_mode(args: argparse.Namespace) -> int:
    doc = read_document(args.file)
    old = doc.data.get("mode")
    if old == args.mode:
        print(f"unchanged: mode is already {args.mode} in {args.file}")
        return 0
    doc.data["mode"] = args.mode
    loaded = save_document(args.file, doc.render(), f"mode {args.mode}")
    cfg = loaded.config
    where = (
        f"every new request goes to {cfg.blue_green.live} ({cfg.live_version()})"
        if cfg.mode == "blue_green" and cfg.blue_green
        else f"traffic follows canary.weights {_format_weights(cfg.weights())}"
    )
    print(f"{args.file}: mode {old} -> {args.mode}; {where}")
    print(f"written (revision {loaded.revision})")
    return 0


# --- status -------------------------------------------------------------------------------------


def fetch_routing(
    url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = STATUS_TIMEOUT_S
) -> dict[str, Any]:
    """GET ``<url>/routing``; every failure becomes a one-line CommandError."""
    endpoint = url.rstrip("/") + "/routing"
    try:
        with httpx.Client(transport=transport, timeout=timeout) as client:
            response = client.get(endpoint)
    except httpx.ConnectError:
        raise CommandError(f"no gateway answering at {url}") from None
    except httpx.TimeoutException:
        raise CommandError(f"gateway at {url} did not answer within {timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise CommandError(f"cannot reach a gateway at {url}: {exc}") from None
    if response.status_code != 200:
        raise CommandError(f"gateway at {url} answered GET /routing with {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise CommandError(f"gateway at {url} answered GET /routing with non-JSON") from None
    if not isinstance(data, dict):
        raise CommandError(f"gateway at {url} answered GET /routing with no JSON object")
    return data


def format_status(data: Mapping[str, Any]) -> list[str]:
    """The /routing document as a few labelled lines and a replica table.

    Every key is optional: a gateway of another version may send more or fewer.
    """
    mode = data.get("mode")
    revision = _text(data.get("revision"))
    loaded_at = data.get("loaded_at")
    fields: list[tuple[str, str]] = [
        ("service", _text(data.get("service"))),
        ("mode", _text(mode)),
        ("stable", _text(data.get("stable"))),
        ("revision", revision + (f" (loaded {loaded_at})" if loaded_at else "")),
    ]
    error = data.get("last_reload_error")
    error_messages: list[str] = []
    if isinstance(error, Mapping):
        fields.append(
            ("reload", f"FAILED at {_text(error.get('at'))}; still serving revision {revision}")
        )
        messages = error.get("messages")
        error_messages = [str(m) for m in messages] if isinstance(messages, list) else []
    else:
        fields.append(("reload", "ok"))

    blue_green = data.get("blue_green")
    weights = data.get("weights")
    if mode == "blue_green" and isinstance(blue_green, Mapping):
        live = blue_green.get("live")
        others = ", ".join(f"{c} = {_text(blue_green.get(c))}" for c in ("blue", "green"))
        fields.append(("live", f"{_text(live)} ({_text(blue_green.get(live))}); {others}"))
    elif isinstance(weights, Mapping):
        shares = ", ".join(f"{name} {weight}%" for name, weight in weights.items())
        fields.append(("weights", shares or "(none)"))
    sticky = data.get("sticky_header")
    if sticky:
        fields.append(("sticky", f"by header {sticky}"))
    fields.append(("shadow", _shadow_label(data.get("shadow"))))
    pinning = data.get("pinning")
    if isinstance(pinning, Mapping):
        allowed = pinning.get("allow")
        allow = ", ".join(map(str, allowed)) if isinstance(allowed, list) else _text(allowed)
        fields.append(("pinning", f"header {_text(pinning.get('header'))}, allows {allow}"))

    width = max(len(label) for label, _ in fields)
    lines = []
    for label, value in fields:
        lines.append(f"{label:<{width}}  {value}")
        if label == "reload":
            lines += [f"{'':<{width}}    {message}" for message in error_messages]
    lines.append("")
    lines += _replica_table(data.get("replicas"))
    return lines


def _shadow_label(shadow: Any) -> str:
    if not isinstance(shadow, Mapping):
        return "-"
    configured = shadow.get("configured")
    if not isinstance(configured, Mapping):
        return "off"
    target = f"{_text(configured.get('version'))} {_text(configured.get('percent'))}%"
    if shadow.get("active"):
        return f"{target}, mirroring"
    note = shadow.get("note")
    return f"{target} configured, NOT active" + (f" ({note})" if note else "")


def _replica_table(replicas: Any) -> list[str]:
    if not isinstance(replicas, list) or not replicas:
        return ["no replicas reported"]
    items = [r for r in replicas if isinstance(r, Mapping)]
    with_errors = any(r.get("last_error") for r in items)
    header = ["VERSION", "URL", "ADDRESS", "STATE", "FAILS", "IN-FLIGHT"]
    rows = []
    for replica in items:
        state = replica.get("state")
        if state is None and "healthy" in replica:
            state = "healthy" if replica["healthy"] else "unhealthy"
        row = [
            _text(replica.get("version")),
            _text(replica.get("url")),
            _text(replica.get("address")),
            _text(state),
            _text(replica.get("consecutive_failures")),
            _text(replica.get("inflight")),
        ]
        if with_errors:
            row.append(_text(replica.get("last_error"), missing=""))
        rows.append(tuple(row))
    if with_errors:
        header.append("LAST ERROR")
    return _table([tuple(header), *rows])


def cmd_status(args: argparse.Namespace) -> int:
    for line in format_status(fetch_routing(args.url)):
        print(line)
    return 0


# --- serve --------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    # Imported here: the editing commands must not pay for (or depend on) the server stack.
    import uvicorn

    from gateway.settings import load_settings

    if args.file is not None:
        # Through the environment so every worker process's settings see it.
        os.environ[ROUTING_FILE_ENV] = args.file
    settings = load_settings()
    with _metrics_dir(settings.metrics_dir, args.workers):
        uvicorn.run(
            "gateway.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
            access_log=settings.access_log,
            timeout_graceful_shutdown=10,
            # uvicorn's httptools protocol with plain predictions short-cut (gateway/server.py).
            http="gateway.server:GatewayProtocol",
        )
    return 0


@contextlib.contextmanager
def _metrics_dir(configured: Path | None, workers: int) -> Iterator[None]:
    """The directory where the workers share their counters (gateway/metrics_share.py).

    The operator's own (GATEWAY_METRICS_DIR) is kept, minus the snapshots of an earlier run,
    which would otherwise add into this one's counters. Unset with several workers: a private
    one for this run, handed to the workers through the environment and removed at exit. One
    worker and none set: nothing to share.
    """
    from gateway.metrics_share import remove_snapshots

    if configured is not None:
        try:
            configured.mkdir(parents=True, exist_ok=True)
            remove_snapshots(configured)
        except OSError as exc:
            raise CommandError(f"gateway refused to start: {METRICS_DIR_ENV}: {exc}") from None
        yield
        return
    if workers <= 1:
        yield
        return
    private = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[METRICS_DIR_ENV] = private
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIR_ENV, None)
        shutil.rmtree(private, ignore_errors=True)


# --- small text helpers -------------------------------------------------------------------------


def _text(value: Any, missing: str = "-") -> str:
    return missing if value is None else str(value)


def _table(rows: Iterable[Sequence[str]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"  {line}" for line in lines]


# --- argument parsing ---------------------------------------------------------------------------

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    default_file = os.environ.get(ROUTING_FILE_ENV, "routing.yaml")
    file_help = f"routing file (default: ${ROUTING_FILE_ENV} or routing.yaml; now {default_file})"
    parser = argparse.ArgumentParser(
        prog="streamflow",
        description="Operate the StreamFlow model gateway: check and edit routing.yaml, "
        "inspect a running gateway, run one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  streamflow validate\n"
        "  streamflow diff new-routing.yaml\n"
        "  streamflow set-weights v2.4.0=25\n"
        "  streamflow mode blue_green\n"
        "  streamflow switch green\n"
        "  streamflow status --url http://127.0.0.1:8080\n",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, run: Command, summary: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description)
        sub.set_defaults(run=run)
        return sub

    sub = add(
        "validate",
        cmd_validate,
        "check a routing file",
        "Check a routing file exactly as the gateway would. Prints its revision, mode and "
        "weights; on errors prints each one with its key and line and exits 1.",
    )
    sub.add_argument("file", nargs="?", default=default_file, metavar="FILE", help=file_help)

    sub = add(
        "diff",
        cmd_diff,
        "what a new routing file would change",
        "Compare FILE with the routing file in use: each version's share of new requests before "
        "and after, the share of sticky keys that would move between versions, and mode, live "
        "colour and other changes. Exits 1 if either file is invalid.",
    )
    sub.add_argument("file", metavar="FILE", help="the proposed routing file")
    sub.add_argument(
        "--against",
        default=default_file,
        metavar="FILE",
        help=f"the routing file in use (default: {default_file})",
    )

    sub = add(
        "set-weights",
        cmd_set_weights,
        "change canary weights",
        "Set canary.weights in place, keeping the file's comments and layout. If exactly one "
        "version you do not name has weight, it takes the rest of 100 (with v2.3.1=90 "
        "v2.4.0=10, 'set-weights v2.4.0=25' gives 75/25); otherwise the weights you name must "
        "sum to 100 and other versions drop to 0. The result is validated before it is "
        "written, and written atomically.",
    )
    sub.add_argument(
        "weights",
        nargs="+",
        type=parse_assignment,
        metavar="VERSION=PERCENT",
        help="e.g. v2.4.0=25",
    )
    sub.add_argument("--file", default=default_file, help=file_help)

    sub = add(
        "switch",
        cmd_switch,
        "flip blue/green live colour",
        "Set blue_green.live, keeping the file's comments and layout; validated, then written "
        "atomically. It only moves traffic when mode is blue_green (a warning says so otherwise).",
    )
    sub.add_argument("colour", choices=["blue", "green"], help="the colour to make live")
    sub.add_argument("--file", default=default_file, help=file_help)

    sub = add(
        "mode",
        cmd_mode,
        "choose canary or blue_green routing",
        "Set the top-level mode, keeping the file's comments and layout; validated (the chosen "
        "mode's section must exist), then written atomically. Prints where new traffic goes.",
    )
    sub.add_argument("mode", choices=["canary", "blue_green"], help="the routing mode")
    sub.add_argument("--file", default=default_file, help=file_help)

    sub = add(
        "status",
        cmd_status,
        "show a running gateway's routing and replicas",
        "Ask a running gateway (GET /routing) for its active config, last reload error, shadow "
        "state and the health of each replica.",
    )
    sub.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="gateway base URL (default: http://127.0.0.1:8080)",
    )

    sub = add(
        "serve",
        cmd_serve,
        "run the gateway",
        "Run the gateway with uvicorn (Ctrl-C stops it). Other settings come from GATEWAY_* "
        "environment variables.",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080)")
    sub.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    sub.add_argument(
        "--file",
        default=None,
        help=f"routing file to serve (sets ${ROUTING_FILE_ENV}; default: routing.yaml)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help and usage errors: return the status so main() can be called like a function.
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    try:
        return args.run(args)
    except CommandError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.code
