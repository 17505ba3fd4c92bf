"""ARCHITECTURE.md is the map of the packages, and the import contracts cover every one of them:
a new package that is not on the map, or not under the contracts, fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE_THE_RULES = {"bench", "tests", "deploy"}  # tools and tests: they may import anything


def project_packages() -> set[str]:
    return {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in OUTSIDE_THE_RULES
    }


def test_every_package_is_a_room_of_the_map() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    rooms = set(re.findall(r"^- \*\*`([a-z_]+)/`\*\*", text, re.MULTILINE))
    assert rooms == project_packages()


def test_every_package_is_under_the_import_contracts_and_installed() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(pyproject["tool"]["importlinter"]["root_packages"]) == project_packages()
    layers = next(
        c for c in pyproject["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    )
    in_layers = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    assert in_layers == project_packages()
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in included} == project_packages()
