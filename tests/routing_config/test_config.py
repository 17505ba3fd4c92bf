import copy
import hashlib
from typing import Any

import pydantic
import pytest
import yaml

from routing_config import ConfigError, RoutingConfig, load_config, parse_config
from tests.gateway.fakes import DESIGN_EXAMPLE

EXAMPLE = DESIGN_EXAMPLE
WEIGHTS_LINE = 10


def example_data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE))


def errors_for(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(data, sort_keys=False))
    return info.value.messages


def assert_error(messages: list[str], expected: str) -> None:
    assert any(m.startswith(expected) for m in messages), messages


def test_design_example_parses() -> None:
    loaded = parse_config(EXAMPLE)
    cfg = loaded.config
    assert cfg.service == "streamflow-churn"
    assert cfg.stable == "v2.3.1"
    assert cfg.mode == "canary"
    assert cfg.versions["v2.3.1"].replicas == (
        "http://model-v2-3-1-a:8000",
        "http://model-v2-3-1-b:8000",
    )
    assert cfg.canary is not None and cfg.canary.sticky_header == "X-Customer-Id"
    assert cfg.shadow is not None and cfg.shadow.percent == 10
    assert cfg.pinning is not None and cfg.pinning.allow == ("v2.3.1", "v2.4.0")
    assert cfg.weights() == {"v2.3.1": 95, "v2.4.0": 5}
    assert cfg.live_version() == "v2.3.1"
    assert loaded.revision == hashlib.sha256(EXAMPLE.encode()).hexdigest()[:12]
    assert loaded.text == EXAMPLE


def test_load_config_reads_file_and_hashes_its_bytes(tmp_path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_bytes(EXAMPLE.encode())
    loaded = load_config(path)
    assert loaded.revision == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert loaded.config == parse_config(EXAMPLE).config


def test_load_config_missing_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read" in str(info.value)


def test_models_are_frozen() -> None:
    cfg = parse_config(EXAMPLE).config
    with pytest.raises(pydantic.ValidationError):
        cfg.stable = "v2.4.0"  # type: ignore[misc]


def test_zero_weight_is_allowed_and_missing_weights_are_zero() -> None:
    data = example_data()
    data["versions"]["v2.5.0"] = {"replicas": ["http://model-v2-5-0-a:8000"]}
    data["canary"]["weights"] = {"v2.3.1": 100, "v2.4.0": 0}
    cfg = parse_config(yaml.safe_dump(data)).config
    assert cfg.weights() == {"v2.3.1": 100, "v2.4.0": 0, "v2.5.0": 0}


def test_blue_green_weights_give_the_live_version_everything() -> None:
    data = example_data()
    data["mode"] = "blue_green"
    data["blue_green"]["live"] = "green"
    del data["canary"]
    cfg = parse_config(yaml.safe_dump(data)).config
    assert cfg.live_version() == "v2.4.0"
    assert cfg.weights() == {"v2.3.1": 0, "v2.4.0": 100}


def test_optional_sections_may_be_left_out() -> None:
    data = example_data()
    for key in ("blue_green", "shadow", "pinning"):
        del data[key]
    del data["canary"]["sticky_header"]
    cfg = parse_config(yaml.safe_dump(data)).config
    assert cfg.blue_green is None and cfg.live_version() is None
    assert cfg.shadow is None and cfg.pinning is None


def test_replica_trailing_slash_is_dropped() -> None:
    data = example_data()
    data["versions"]["v2.4.0"]["replicas"] = ["http://model-v2-4-0-a:8000/"]
    cfg = parse_config(yaml.safe_dump(data)).config
    assert cfg.versions["v2.4.0"].replicas == ("http://model-v2-4-0-a:8000",)


# --- errors with line numbers -------------------------------------------------------------------


def test_weights_sum_names_key_and_line() -> None:
    text = EXAMPLE.replace("{v2.3.1: 95, v2.4.0: 5}", "{v2.3.1: 93, v2.4.0: 5}")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.messages == [f"canary.weights: sum to 98, must be 100 (line {WEIGHTS_LINE})"]
    assert "canary.weights: sum to 98, must be 100" in str(info.value)


def test_unknown_key_names_key_and_line() -> None:
    text = EXAMPLE.replace("  live: blue", "  live: blue\n  colour: red")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.messages == ["blue_green.colour: unknown key (line 16)"]


def test_unknown_top_level_key_names_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(EXAMPLE + "canray: {}\n")
    assert info.value.messages == ["canray: unknown key (line 22)"]


def test_nested_error_points_at_the_item_line() -> None:
    text = EXAMPLE.replace("  allow: [v2.3.1, v2.4.0]", "  allow:\n    - v2.3.1\n    - v9.9.9")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.messages[0].startswith("pinning.allow[1]: unknown version 'v9.9.9'")
    assert info.value.messages[0].endswith("(line 23)")


def test_yaml_syntax_error_has_line() -> None:
    text = EXAMPLE.replace("  live: blue ", "  live: [blue ")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    [message] = info.value.messages
    assert message.startswith("yaml: ")
    assert "(line " in message


def test_duplicate_yaml_key_is_rejected() -> None:
    # PyYAML would silently keep the last one.
    with pytest.raises(ConfigError) as info:
        parse_config(EXAMPLE.replace("  live: blue ", "  live: blue\n  live: green "))
    assert info.value.messages == ["blue_green.live: duplicate key (line 16)"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_non_mapping_document_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.messages[0].startswith("<root>: must be a mapping")


def test_all_problems_are_reported_together() -> None:
    data = example_data()
    data["stable"] = "v1"
    data["canary"]["weights"] = {"v2.3.1": 90, "v2.4.0": 5}
    data["shadow"]["version"] = "v3"
    messages = errors_for(data)
    assert len(messages) == 3
    assert_error(messages, "stable: unknown version 'v1'")
    assert_error(messages, "canary.weights: sum to 95, must be 100")
    assert_error(messages, "shadow.version: unknown version 'v3'")


# --- every validation rule names its key path ---------------------------------------------------


def _set(path: tuple[Any, ...], value: Any):
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _delete(key: str):
    def mutate(data: dict[str, Any]) -> None:
        del data[key]

    return mutate


def _blue_green_without_section(data: dict[str, Any]) -> None:
    data["mode"] = "blue_green"
    del data["blue_green"]


REPLICAS = ("versions", "v2.4.0", "replicas")
CASES = {
    "weights sum": (
        _set(("canary", "weights"), {"v2.3.1": 90, "v2.4.0": 8}),
        "canary.weights: sum to 98, must be 100",
    ),
    "weight for unknown version": (
        _set(("canary", "weights"), {"v2.3.1": 95, "v9": 5}),
        "canary.weights.v9: unknown version 'v9'",
    ),
    "negative weight": (
        _set(("canary", "weights"), {"v2.3.1": 105, "v2.4.0": -5}),
        "canary.weights.v2.4.0: negative weight -5",
    ),
    "weight not an integer": (
        _set(("canary", "weights"), {"v2.3.1": 95, "v2.4.0": True}),
        "canary.weights.v2.4.0: ",
    ),
    "stable unknown": (_set(("stable",), "v1.0.0"), "stable: unknown version 'v1.0.0'"),
    "blue unknown": (_set(("blue_green", "blue"), "v0"), "blue_green.blue: unknown version"),
    "green unknown": (_set(("blue_green", "green"), "v0"), "blue_green.green: unknown version"),
    "live not a colour": (_set(("blue_green", "live"), "purple"), "blue_green.live: "),
    "mode unknown": (_set(("mode",), "random"), "mode: "),
    "replica not http": (_set(REPLICAS, ["ftp://model:8000"]), "versions.v2.4.0.replicas[0]: "),
    "replica without scheme": (
        _set(REPLICAS, ["model-v2-4-0-a:8000"]),
        "versions.v2.4.0.replicas[0]: 'model-v2-4-0-a:8000' is not an http(s) URL with a host",
    ),
    "replica without host": (_set(REPLICAS, ["http://:8000"]), "versions.v2.4.0.replicas[0]: "),
    "replica bad port": (_set(REPLICAS, ["http://model:99999"]), "versions.v2.4.0.replicas[0]: "),
    "duplicate replica in a version": (
        _set(REPLICAS, ["http://model-v2-4-0-a:8000", "http://MODEL-v2-4-0-a:8000/"]),
        "versions.v2.4.0.replicas[1]: duplicate replica",
    ),
    "duplicate replica across versions": (
        _set(REPLICAS, ["http://model-v2-3-1-b:8000"]),
        "versions.v2.4.0.replicas[0]: duplicate replica http://model-v2-3-1-b:8000, "
        "see versions.v2.3.1.replicas[1]",
    ),
    "version without replicas": (
        _set(REPLICAS, []),
        "versions.v2.4.0.replicas: a version needs at least one replica",
    ),
    "no versions": (_set(("versions",), {}), "versions: at least one version is required"),
    "version name not header-safe": (
        _set(("versions", "v 2"), {"replicas": ["http://x:1"]}),
        "versions.v 2: version names may only use",
    ),
    "shadow unknown version": (_set(("shadow", "version"), "v3"), "shadow.version: unknown"),
    "shadow percent out of range": (_set(("shadow", "percent"), 101), "shadow.percent: "),
    "pinning unknown version": (
        _set(("pinning", "allow"), ["v2.3.1", "v3"]),
        "pinning.allow[1]: unknown version 'v3'",
    ),
    "pinning bad header": (_set(("pinning", "header"), "X Model"), "pinning.header: "),
    "sticky bad header": (_set(("canary", "sticky_header"), "a:b"), "canary.sticky_header: "),
    "unknown top-level key": (_set(("canray",), {}), "canray: unknown key"),
    "unknown nested key": (_set(("shadow", "percentage"), 5), "shadow.percentage: unknown key"),
    "unknown version key": (_set(("versions", "v2.4.0", "replica"), []), "versions.v2.4.0.replica"),
    "missing service": (_delete("service"), "service: required key missing"),
    "canary mode without canary": (_delete("canary"), "canary: missing; required when mode is"),
    "blue_green mode without section": (_blue_green_without_section, "blue_green: missing;"),
    "unquoted numeric version name": (
        _set(("pinning", "allow"), ["v2.3.1", 2.4]),
        "pinning.allow[1]: Input should be a valid string (got 2.4; quote it in YAML)",
    ),
}


@pytest.mark.parametrize(("mutate", "expected"), CASES.values(), ids=CASES.keys())
def test_validation_error_names_key_path(mutate, expected: str) -> None:
    data = example_data()
    mutate(data)
    messages = errors_for(data)
    assert_error(messages, expected)
    # Every message carries a line, except a missing top-level section, which has none.
    assert all("(line " in m for m in messages if "missing" not in m), messages


def test_constructing_the_model_directly_raises_validation_error() -> None:
    data = example_data()
    data["canary"]["weights"] = {"v2.3.1": 50, "v2.4.0": 5}
    with pytest.raises(pydantic.ValidationError) as info:
        RoutingConfig.model_validate(data)
    [error] = info.value.errors()
    assert error["loc"] == ("canary", "weights")
    assert error["msg"] == "sum to 55, must be 100"
