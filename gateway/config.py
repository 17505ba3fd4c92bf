"""routing.yaml: schema, loading and validation.

The file is parsed once into frozen models and swapped whole; nothing edits a config in place.
Every problem is reported as ``path: message (line N)`` so an operator can find it in the file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from gateway.yaml_syntax import describe_yaml_error

__all__ = [
    "BlueGreenSpec",
    "CanarySpec",
    "ConfigError",
    "ConfigIssue",
    "LoadedConfig",
    "PinningSpec",
    "RolloutHorizon",
    "RolloutSpec",
    "RolloutThresholds",
    "RoutingConfig",
    "ShadowBakeSpec",
    "ShadowSpec",
    "VersionSpec",
    "load_config",
    "parse_config",
]

# Version names travel in response headers (X-Model-Version), so they must be header-safe.
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# RFC 9110 token: the characters allowed in a header field name.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _check_replica_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    try:
        parts.port  # noqa: B018 - urlsplit only validates the port when it is read
    except ValueError as exc:
        raise ValueError(f"{url!r} has an invalid port") from exc
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a replica is a base URL, without query or fragment")
    # A trailing slash would turn base + "/predict" into "//predict" further down.
    return url.rstrip("/")


def _check_header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    return name


_DURATION = re.compile(r"(\d+)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_duration(value: object) -> object:
    """'500ms', '10s', '5m', '1h' (a whole number and a unit, as Prometheus writes them) to
    seconds. Anything else is passed on for pydantic to reject by type."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration like 500ms, 10s, 5m or 1h")
        return int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit; write e.g. {value}s")
    return value


ReplicaUrl = Annotated[str, AfterValidator(_check_replica_url)]
# Seconds, written in the file with a unit.
Duration = Annotated[float, BeforeValidator(_parse_duration), Field(gt=0)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionSpec(_Frozen):
    replicas: tuple[ReplicaUrl, ...]

    @field_validator("replicas")
    @classmethod
    def _not_empty(cls, replicas: tuple[str, ...]) -> tuple[str, ...]:
        if not replicas:
            raise ValueError("a version needs at least one replica")
        return replicas


class CanarySpec(_Frozen):
    # Strict: YAML `true` or `"5"` as a weight is a typo, not a number.
    weights: dict[str, StrictInt]
    sticky_header: HeaderName | None = None


class BlueGreenSpec(_Frozen):
    blue: str
    green: str
    live: Literal["blue", "green"]


class ShadowSpec(_Frozen):
    version: str
    percent: Annotated[StrictInt | StrictFloat, Field(ge=0, le=100)]


class PinningSpec(_Frozen):
    header: HeaderName
    allow: tuple[str, ...]


Share = Annotated[StrictFloat, Field(gt=0, lt=1)]


class RolloutThresholds(_Frozen):
    """When a candidate fails a check; ``null`` switches a check off. README, "Progressive
    rollout", says why each default is what it is."""

    error_rate: Share | None = 0.01  # ceiling on the candidate's error rate
    significance: Annotated[StrictFloat, Field(gt=0, le=0.5)] = 0.01  # one-sided tests' alpha
    p99_ratio: Annotated[StrictInt | StrictFloat, Field(ge=1)] | None = 1.5
    p99_tolerance_ms: Annotated[StrictInt | StrictFloat, Field(ge=0)] = 10
    p99_max_ms: Annotated[StrictInt | StrictFloat, Field(gt=0)] | None = 1000
    psi: Annotated[StrictInt | StrictFloat, Field(gt=0)] | None = 0.2
    # Largest share of customers the candidate may put in another risk tier than stable does
    # (total variation distance of the two tier mixes).
    tier_shift: Share | None = 0.1


class ShadowBakeSpec(_Frozen):
    """Before any customer is served: the candidate shadows ``percent`` of predictions for
    ``duration``, judged on the gateway's shadow comparison (README, "Progressive rollout")."""

    percent: Annotated[StrictInt | StrictFloat, Field(gt=0, le=100)]
    duration: Duration
    min_comparisons: Annotated[StrictInt, Field(ge=1)] = 300  # compared rows before a verdict
    min_tier_agreement: Share = 0.9  # share of rows whose risk tier both versions agree on
    psi: Annotated[StrictInt | StrictFloat, Field(gt=0)] | None = 0.2  # shadow vs client


class RolloutHorizon(_Frozen):
    """When a step that has not passed is decided: PASS, FAIL, or halted for the operator
    (README, "Progressive rollout"). Never before ``interval``."""

    duration: Duration | None = None  # the step's longest time; None: 20 times ``interval``
    requests: Annotated[StrictInt, Field(ge=1)] | None = 100_000  # the candidate's, per step


class RolloutSpec(_Frozen):
    """The progressive rollout controller's plan (the `streamflow rollout` commands); the
    gateway only validates it."""

    candidate: str
    # canary: the candidate's weight steps up; blue_green: the live colour flips to it once,
    # ``interval`` is then the baking period.
    strategy: Literal["canary", "blue_green"] = "canary"
    steps: tuple[StrictInt, ...] | None = None  # canary only
    interval: Duration = 60.0  # time at each step before it may advance
    check_every: Duration = 10.0
    min_requests: Annotated[StrictInt, Field(ge=1)] = 300  # per step, before any verdict
    failure_limit: Annotated[StrictInt, Field(ge=1)] = 2  # failed checks in a row: roll back
    horizon: RolloutHorizon = RolloutHorizon()
    thresholds: RolloutThresholds = RolloutThresholds()
    shadow_bake: ShadowBakeSpec | None = None

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, steps: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if steps is None:
            return None
        if not steps:
            raise ValueError("at least one step is required, and the last must be 100")
        if any(not 1 <= step <= 100 for step in steps):
            raise ValueError("each step is a candidate weight from 1 to 100")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError("steps must increase")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100 (promotion follows it)")
        return steps


class RoutingConfig(_Frozen):
    service: Annotated[str, Field(min_length=1)]
    stable: str
    mode: Literal["canary", "blue_green"]
    versions: dict[str, VersionSpec]
    canary: CanarySpec | None = None
    blue_green: BlueGreenSpec | None = None
    shadow: ShadowSpec | None = None
    pinning: PinningSpec | None = None
    rollout: RolloutSpec | None = None

    @field_validator("versions")
    @classmethod
    def _check_versions(cls, versions: dict[str, VersionSpec]) -> dict[str, VersionSpec]:
        if not versions:
            raise ValueError("at least one version is required")
        return versions

    @model_validator(mode="after")
    def _check_references(self) -> RoutingConfig:
        # Collect every cross-field problem with its own key path, then raise them together so
        # one save shows the operator everything that is wrong, each with its line.
        problems = _cross_field_problems(self)
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("routing", "{reason}", {"reason": msg}),
                        loc=loc,
                        input=None,
                    )
                    for loc, msg in problems
                ],
            )
        return self

    def weights(self) -> dict[str, int]:
        """Effective percent of new traffic per version under the active mode; every version
        is listed (unlisted canary versions get 0; blue/green gives the live version 100)."""
        if self.mode == "blue_green":
            live = self.live_version()
            return {name: 100 if name == live else 0 for name in self.versions}
        weights = self.canary.weights if self.canary else {}
        return {name: weights.get(name, 0) for name in self.versions}

    def live_version(self) -> str | None:
        """The version behind the live colour, or None without a blue_green section."""
        if self.blue_green is None:
            return None
        bg = self.blue_green
        return bg.blue if bg.live == "blue" else bg.green


Loc = tuple[str | int, ...]


def _cross_field_problems(cfg: RoutingConfig) -> list[tuple[Loc, str]]:
    known = cfg.versions
    names = ", ".join(sorted(known))
    problems: list[tuple[Loc, str]] = []

    def check_known(loc: Loc, name: str) -> None:
        if name not in known:
            problems.append((loc, f"unknown version {name!r}; versions are: {names}"))

    for name in known:
        if not _VERSION_NAME.fullmatch(name):
            problems.append(
                (("versions", name), "version names may only use letters, digits and . _ + -")
            )

    check_known(("stable",), cfg.stable)

    seen: dict[str, str] = {}
    for name, spec in known.items():
        for i, url in enumerate(spec.replicas):
            key = _replica_identity(url)
            where = f"versions.{name}.replicas[{i}]"
            if key in seen:
                problems.append(
                    (("versions", name, "replicas", i), f"duplicate replica {url}, see {seen[key]}")
                )
            else:
                seen[key] = where

    if cfg.mode == "canary" and cfg.canary is None:
        problems.append((("canary",), "missing; required when mode is canary"))
    if cfg.mode == "blue_green" and cfg.blue_green is None:
        problems.append((("blue_green",), "missing; required when mode is blue_green"))

    if cfg.canary is not None:
        weights = cfg.canary.weights
        for name, weight in weights.items():
            check_known(("canary", "weights", name), name)
            if weight < 0:
                problems.append((("canary", "weights", name), f"negative weight {weight}"))
        total = sum(weights.values())
        if total != 100:
            problems.append((("canary", "weights"), f"sum to {total}, must be 100"))

    if cfg.blue_green is not None:
        check_known(("blue_green", "blue"), cfg.blue_green.blue)
        check_known(("blue_green", "green"), cfg.blue_green.green)

    if cfg.shadow is not None:
        check_known(("shadow", "version"), cfg.shadow.version)

    if cfg.pinning is not None:
        for i, name in enumerate(cfg.pinning.allow):
            check_known(("pinning", "allow", i), name)

    if cfg.rollout is not None:
        check_known(("rollout", "candidate"), cfg.rollout.candidate)
        if cfg.rollout.candidate == cfg.stable:
            problems.append(
                (("rollout", "candidate"), "is the stable version; nothing to roll out")
            )
        rollout = cfg.rollout
        if rollout.strategy == "canary":
            if cfg.mode != "canary":
                problems.append(
                    (("rollout",), "a canary rollout steps canary weights: needs mode: canary")
                )
            if rollout.steps is None:
                problems.append((("rollout", "steps"), "required for strategy canary"))
        else:
            if cfg.mode != "blue_green":
                problems.append(
                    (
                        ("rollout",),
                        "a blue/green rollout flips the live colour: needs mode: blue_green",
                    )
                )
            if rollout.steps is not None:
                problems.append(
                    (
                        ("rollout", "steps"),
                        "a blue/green rollout has one step, the flip: leave it out",
                    )
                )
            bg = cfg.blue_green
            if bg is not None and {bg.blue, bg.green} != {cfg.stable, rollout.candidate}:
                problems.append(
                    (
                        ("rollout", "candidate"),
                        "a blue/green rollout needs stable and the candidate as blue and green",
                    )
                )
        if cfg.rollout.check_every > cfg.rollout.interval:
            problems.append((("rollout", "check_every"), "must not be longer than interval"))
        bake = cfg.rollout.shadow_bake
        if bake is not None and cfg.rollout.check_every > bake.duration:
            problems.append(
                (("rollout", "shadow_bake", "duration"), "must not be shorter than check_every")
            )

    return problems


def _replica_identity(url: str) -> str:
    # Host names are case-insensitive and the default port is implied, so
    # http://A:80 and http://a are the same replica.
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    return f"{parts.scheme}://{parts.hostname}:{port}{parts.path.rstrip('/')}"


# --- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path}: {self.message}{where}"


class ConfigError(Exception):
    """An invalid routing.yaml. ``messages`` are ready for logs and /routing."""

    def __init__(self, issues: Sequence[ConfigIssue], source: str | None = None) -> None:
        self.issues = tuple(issues)
        self.source = source
        self.messages = [str(issue) for issue in self.issues]
        origin = f" in {source}" if source else ""
        super().__init__(f"invalid routing config{origin}: " + "; ".join(self.messages))


# --- loading ------------------------------------------------------------------------------------


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
