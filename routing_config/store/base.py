"""The one interface every place routing is kept behind: read it, and edit it safely.

A routing document lives in a file (the default) or in a Kubernetes ConfigMap's data; the CLI
and the rollout controller edit it through this interface alone, so each edit is written the
same way wherever the document lives: read, changed by an edit function (comments and layout
kept), validated as the gateway validates (an invalid document is never written), then written
so that a concurrent change is never overwritten (the ConfigMap's resourceVersion; the file
keeps its atomic rename).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from routing_config.document import Document
from routing_config.load import LoadedConfig

__all__ = ["Edit", "RoutingStore", "Stored"]

# Changes the document in place and says what it changed ("canary.weights v2.3.1=75 v2.4.0=25"),
# or returns None when there is nothing to write. A store may call it more than once (each time
# on a freshly read document, after a concurrent write), so it must depend on nothing but the
# document it is given.
Edit = Callable[[Document], "str | None"]


@dataclass(frozen=True, slots=True)
class Stored:
    """The document's text as stored, and the version it was read at: a ConfigMap's
    resourceVersion, or a file's content hash."""

    text: str
    version: str


class RoutingStore(Protocol):
    """Where a routing document is kept. ``location`` is how the operator named it (a path, or
    ``configmap:NAMESPACE/NAME``): every message about the document names it so."""

    @property
    def location(self) -> str: ...

    def read(self) -> Stored:
        """The text and its version; ``ConfigError`` ("cannot read") when unreachable."""
        ...

    def load(self) -> LoadedConfig:
        """The document validated as the gateway validates it; ``ConfigError`` when invalid."""
        ...

    def edit(self, change: Edit) -> LoadedConfig | None:
        """Apply ``change`` and write the result when it is valid; None when ``change`` found
        nothing to do. ``RoutingEditError`` when refused or not written: nothing changed."""
        ...
