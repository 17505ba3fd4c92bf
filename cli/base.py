"""What every command module shares: the error it raises and how it registers itself."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

from routing_config import ConfigError, LoadedConfig
from routing_config.store import load_routing as load_from_store

__all__ = [
    "DEFAULT_GATEWAY_URL",
    "GATEWAY_URL_ENV",
    "ROUTING_FILE_ENV",
    "CommandError",
    "Commands",
    "Run",
    "load_routing",
]

# Every command that talks to a gateway defaults to this variable's URL, so a stack started on
# another port (`make up PORT=8081`) is reached by one export instead of a flag on each command.
GATEWAY_URL_ENV = "STREAMFLOW_URL"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"

# Same variable the gateway reads (GatewaySettings.routing_file), so inside a gateway container
# the CLI edits the document the gateway serves without repeating --file: a path, or
# configmap:NAMESPACE/NAME (routing_config/store/).
ROUTING_FILE_ENV = "GATEWAY_ROUTING_FILE"

Run = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure reported on stderr line by line; ``code`` becomes the exit status."""

    def __init__(self, *lines: str, code: int = 1) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code


@dataclass(frozen=True, slots=True)
class Commands:
    """Given to each command module's ``register``: adds sub-commands; knows shared defaults."""

    subparsers: argparse._SubParsersAction[argparse.ArgumentParser]  # argparse does not export it
    default_file: str
    default_url: str = DEFAULT_GATEWAY_URL

    @classmethod
    def for_parser(cls, parser: argparse.ArgumentParser) -> Commands:
        subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        url = os.environ.get(GATEWAY_URL_ENV) or DEFAULT_GATEWAY_URL
        return cls(subparsers, os.environ.get(ROUTING_FILE_ENV, "routing.yaml"), url)

    def add(self, name: str, run: Run, summary: str, description: str) -> argparse.ArgumentParser:
        sub = self.subparsers.add_parser(name, help=summary, description=description)
        sub.set_defaults(run=run)
        return sub

    @property
    def file_help(self) -> str:
        return (
            "routing file, or configmap:NAMESPACE/NAME for a Kubernetes ConfigMap's routing.yaml "
            f"(default: ${ROUTING_FILE_ENV} or routing.yaml; now {self.default_file})"
        )

    def add_file_option(self, sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--file", default=self.default_file, help=self.file_help)

    @property
    def url_help(self) -> str:
        return (
            f"gateway base URL (default: ${GATEWAY_URL_ENV} or {DEFAULT_GATEWAY_URL}; "
            f"now {self.default_url})"
        )

    def add_url_option(self, sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--url", default=self.default_url, help=self.url_help)


def load_routing(path: str) -> LoadedConfig:
    """The routing document parsed and validated as the gateway would; errors name key and line."""
    try:
        return load_from_store(path)
    except ConfigError as exc:
        raise CommandError(f"invalid: {path}", *(f"  {m}" for m in exc.messages)) from None
