"""routing.yaml as a file: today's behaviour, read from disk and replaced by an atomic rename."""

from __future__ import annotations

import hashlib
from pathlib import Path

from routing_config.document import read_document, save_document
from routing_config.errors import ConfigError, ConfigIssue
from routing_config.load import LoadedConfig, load_config
from routing_config.store.base import Edit, Stored

__all__ = ["FileStore"]


class FileStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    @property
    def location(self) -> str:
        return self.path

    def read(self) -> Stored:
        try:
            data = Path(self.path).read_bytes()
        except OSError as exc:
            issue = ConfigIssue(self.path, f"cannot read: {exc.strerror or exc}")
            raise ConfigError([issue]) from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError([ConfigIssue(self.path, "not valid UTF-8")], self.path) from exc
        return Stored(text, hashlib.sha256(data).hexdigest()[:12])

    def load(self) -> LoadedConfig:
        return load_config(self.path)

    def edit(self, change: Edit) -> LoadedConfig | None:
        doc = read_document(self.path)
        said = change(doc)
        if said is None:
            return None
        # A file has no version to write against: the last writer wins, as with any editor.
        return save_document(self.path, doc.render(), said)
