"""Two writers racing on one ConfigMap (through the API stand-in) lose no edit: each
read-modify-write that meets a concurrent change is applied again to the new document."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import pytest

from routing_config import parse_config
from routing_config.document import Document
from routing_config.store import ConfigMapStore
from routing_config.store.kube_api import KubeConnection
from routing_config.store.location import ConfigMapRef
from tests.kube_standin import KubeStandIn

REF = ConfigMapRef("streamflow", "streamflow-routing")
ROUTING = """\
service: streamflow-churn   # two writers edit this document at once
stable: v2.3.1
mode: canary
versions:
  v2.3.1:
    replicas: [http://a:8000]
  v2.4.0:
    replicas: [http://b:8000]
canary:
  weights: {v2.3.1: 90, v2.4.0: 10}
shadow:
  version: v2.4.0
  percent: 0
"""
EDITS = 15  # by each writer


@pytest.fixture
def standin() -> Iterator[KubeStandIn]:
    with KubeStandIn(REF.namespace, REF.name, ROUTING) as server:
        yield server


def writer(standin: KubeStandIn, edit: Callable[[Document], str], errors: list[str]) -> None:
    store = ConfigMapStore(REF, lambda: KubeConnection(standin.url, None, None))
    for _ in range(EDITS):
        try:
            store.edit(edit)
        except Exception as exc:  # noqa: BLE001 - reported by the test, not swallowed
            errors.append(repr(exc))


# For the first few edits both writers hold a read before either writes, so the race happens
# however the machine schedules the threads (a loaded machine may otherwise run them one after
# the other); then the barrier is broken and the writers race freely, as real ones would.
BOTH_READ = threading.Barrier(2, timeout=2.0)
FORCED_RACES = 3


def hold_until_both_read() -> None:
    with contextlib.suppress(threading.BrokenBarrierError):
        if BOTH_READ.wait() == 0 and FORCED_ROUNDS.pop() == 1:
            BOTH_READ.abort()  # every later wait returns at once


FORCED_ROUNDS: list[int] = []


def one_more_canary_point(doc: Document) -> str:
    weights = doc.data["canary"]["weights"]
    hold_until_both_read()  # between the read and the write: the other writer gets in
    weights["v2.4.0"] += 1
    weights["v2.3.1"] -= 1
    return "canary +1"


def one_more_shadow_point(doc: Document) -> str:
    shadow = doc.data["shadow"]
    hold_until_both_read()
    shadow["percent"] += 1
    return "shadow +1"


def test_two_writers_on_different_keys_lose_no_edit(standin: KubeStandIn) -> None:
    BOTH_READ.reset()
    FORCED_ROUNDS[:] = range(1, FORCED_RACES + 1)
    errors: list[str] = []
    threads = [
        threading.Thread(target=writer, args=(standin, edit, errors))
        for edit in (one_more_canary_point, one_more_shadow_point)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    config = parse_config(standin.text()).config
    assert config.weights() == {"v2.3.1": 90 - EDITS, "v2.4.0": 10 + EDITS}
    assert config.shadow is not None and config.shadow.percent == EDITS
    assert standin.counts["patch"] == 2 * EDITS
    # The race was real: some writes met a concurrent change, were refused and made again.
    assert standin.counts["conflict"] > 0
    assert "# two writers edit this document at once" in standin.text()
    print(f"\n{2 * EDITS} racing edits, {standin.counts['conflict']} conflicts retried, none lost")
