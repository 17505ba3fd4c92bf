"""What the controller does to routing.yaml: set a step (canary weights, or the blue/green live
colour, and the candidate's shadow during a bake), roll back, promote.

Every edit goes through the routing library's comment-keeping editor (routing_config/document.py):
validated as the gateway validates, written atomically, the operator's comments and layout
kept. Rolling back and promoting end the rollout, so both remove the ``rollout:`` section in the
same write (the decision log keeps the record); the old version stays listed at weight 0 after a
promotion, for an instant manual rollback.
"""

from __future__ import annotations

from collections.abc import Mapping

from ruamel.yaml.comments import CommentedMap

from rollout.plan import Plan
from routing_config import LoadedConfig
from routing_config.document import (
    Document,
    child_map,
    read_document,
    remove_key,
    save_document,
)
from routing_config.weights import format_weights, plan_weights

__all__ = ["promote", "roll_back", "set_step", "set_weights"]


def set_weights(
    path: str, weights: Mapping[str, int], shadow: tuple[str, float] | None = None
) -> LoadedConfig:
    """The weights, and with ``shadow`` (version, percent) the shadow section, in one write."""
    doc = read_document(path)
    change = _write_weights(doc, path, weights)
    if shadow is not None:
        section = child_map(doc.data, "shadow", path, create=True)
        version, percent = shadow
        if str(section.get("version")) != version:
            section["version"] = version
        if section.get("percent") != percent:
            section["percent"] = percent
        change += f", shadow {version} at {percent:g}%"
    return save_document(path, doc.render(), change)


def set_step(path: str, plan: Plan, step: int) -> LoadedConfig:
    """Routing as the plan has it at ``step``, in one write."""
    doc = read_document(path)
    if plan.blue_green:
        change = _write_live(doc, path, plan.candidate if plan.weight(step) else plan.stable)
    else:
        change = _write_weights(doc, path, plan.weights(step))
    percent = plan.shadow_percent(step)
    if percent is not None:
        section = child_map(doc.data, "shadow", path, create=True)
        if str(section.get("version")) != plan.candidate:
            section["version"] = plan.candidate
        if section.get("percent") != percent:
            section["percent"] = percent
        change += f", shadow {plan.candidate} at {percent:g}%"
    return save_document(path, doc.render(), change)


def roll_back(path: str, plan: Plan) -> LoadedConfig:
    """Candidate to 0 (or the live colour back to stable's), the candidate's shadow off, the
    rollout section gone."""
    doc = read_document(path)
    if plan.blue_green:
        change = _write_live(doc, path, plan.stable)
    else:
        change = _write_weights(doc, path, {plan.stable: 100, plan.candidate: 0})
    shadow = doc.data.get("shadow")
    if isinstance(shadow, CommentedMap) and str(shadow.get("version")) == plan.candidate:
        shadow["percent"] = 0
    remove_key(doc.data, "rollout")
    return save_document(path, doc.render(), f"{change}, rollout section removed")


def promote(path: str, plan: Plan) -> LoadedConfig:
    """The candidate becomes stable at 100 (or live); the old stable stays listed at 0 (or as
    the other colour)."""
    doc = read_document(path)
    if plan.blue_green:
        change = _write_live(doc, path, plan.candidate)
    else:
        change = _write_weights(doc, path, {plan.candidate: 100})
    doc.data["stable"] = plan.candidate
    remove_key(doc.data, "rollout")
    return save_document(path, doc.render(), f"stable {plan.candidate}, {change}")


def _write_weights(doc: Document, path: str, given: Mapping[str, int]) -> str:
    canary = child_map(doc.data, "canary", path, create=True)
    weights = child_map(canary, "weights", path, create=True)
    keys = {str(key): key for key in weights}
    old = {name: weights[key] for name, key in keys.items()}
    versions = doc.data.get("versions")
    names = [str(name) for name in versions] if isinstance(versions, Mapping) else []
    # Weights given that sum to 100 put every other version at 0, as set-weights does.
    new = plan_weights(old, {**{n: 0 for n in names if n not in given}, **given}, names)
    for name, weight in new.items():
        if old.get(name) != weight:  # untouched entries keep their form
            weights[keys.get(name, name)] = weight
    return f"canary.weights {format_weights(new)}"


def _write_live(doc: Document, path: str, version: str) -> str:
    section = child_map(doc.data, "blue_green", path, create=False)
    colour = "blue" if str(section.get("blue")) == version else "green"
    if section.get("live") != colour:
        section["live"] = colour
    return f"blue_green.live {colour} ({version})"
