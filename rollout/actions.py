"""What the controller does to routing.yaml: set a step (canary weights, or the blue/green live
colour, and the candidate's shadow during a bake), roll back, promote.

Every edit goes through the routing library's store (routing_config/store/: the file, or the
ConfigMap through the Kubernetes API) with its comment-keeping editor: validated as the gateway
validates, written atomically (a file) or against the resourceVersion it was read at (a
ConfigMap, where a concurrent change makes the store re-read and apply the same edit again), the
operator's comments and layout kept. Rolling back and promoting end the rollout, so both
remove the ``rollout:`` section in the same write (the decision log keeps the record); the old
version stays listed at weight 0 after a promotion, for an instant manual rollback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ruamel.yaml.comments import CommentedMap

from rollout.plan import Plan
from routing_config import LoadedConfig
from routing_config.document import Document, child_map, remove_key
from routing_config.store import RoutingStore, open_store
from routing_config.weights import format_weights, plan_weights

__all__ = ["promote", "roll_back", "set_step", "set_weights"]


def set_weights(
    where: RoutingStore | str,
    weights: Mapping[str, int],
    shadow: tuple[str, float] | None = None,
) -> LoadedConfig:
    """The weights, and with ``shadow`` (version, percent) the shadow section, in one write."""
    store = _store(where)

    def edit(doc: Document) -> str:
        change = _write_weights(doc, store.location, weights)
        if shadow is not None:
            version, percent = shadow
            change += _write_shadow(doc, store.location, version, percent)
        return change

    return _edit(store, edit)


def set_step(where: RoutingStore | str, plan: Plan, step: int) -> LoadedConfig:
    """Routing as the plan has it at ``step``, in one write."""
    store = _store(where)

    def edit(doc: Document) -> str:
        if plan.blue_green:
            live = plan.candidate if plan.weight(step) else plan.stable
            change = _write_live(doc, store.location, live)
        else:
            change = _write_weights(doc, store.location, plan.weights(step))
        percent = plan.shadow_percent(step)
        if percent is not None:
            change += _write_shadow(doc, store.location, plan.candidate, percent)
        return change

    return _edit(store, edit)


def roll_back(where: RoutingStore | str, plan: Plan) -> LoadedConfig:
    """Candidate to 0 (or the live colour back to stable's), the candidate's shadow off, the
    rollout section gone."""
    store = _store(where)

    def edit(doc: Document) -> str:
        if plan.blue_green:
            change = _write_live(doc, store.location, plan.stable)
        else:
            change = _write_weights(doc, store.location, {plan.stable: 100, plan.candidate: 0})
        shadow = doc.data.get("shadow")
        if isinstance(shadow, CommentedMap) and str(shadow.get("version")) == plan.candidate:
            shadow["percent"] = 0
        remove_key(doc.data, "rollout")
        return f"{change}, rollout section removed"

    return _edit(store, edit)


def promote(where: RoutingStore | str, plan: Plan) -> LoadedConfig:
    """The candidate becomes stable at 100 (or live); the old stable stays listed at 0 (or as
    the other colour)."""
    store = _store(where)

    def edit(doc: Document) -> str:
        if plan.blue_green:
            change = _write_live(doc, store.location, plan.candidate)
        else:
            change = _write_weights(doc, store.location, {plan.candidate: 100})
        doc.data["stable"] = plan.candidate
        remove_key(doc.data, "rollout")
        return f"stable {plan.candidate}, {change}"

    return _edit(store, edit)


def _store(where: RoutingStore | str) -> RoutingStore:
    return open_store(where) if isinstance(where, str) else where


def _edit(store: RoutingStore, edit: Callable[[Document], str]) -> LoadedConfig:
    loaded = store.edit(edit)
    assert loaded is not None  # these edits always write: the caller wants the revision
    return loaded


def _write_shadow(doc: Document, path: str, version: str, percent: float) -> str:
    section = child_map(doc.data, "shadow", path, create=True)
    if str(section.get("version")) != version:
        section["version"] = version
    if section.get("percent") != percent:
        section["percent"] = percent
    return f", shadow {version} at {percent:g}%"


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
