"""Removing a section keeps the comments written above it."""

from __future__ import annotations

from pathlib import Path

from routing_config.document import read_document, remove_key

ROOT = Path(__file__).resolve().parents[2]


def render_without(tmp_path: Path, text: str, key: str) -> str:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    doc = read_document(str(path))
    remove_key(doc.data, key)
    return doc.render()


def test_the_comment_above_the_last_key_stays(tmp_path: Path) -> None:
    text = "a: 1\n\n# about b\n# more about b\nb: {x: 1}\n"
    assert render_without(tmp_path, text, "b") == "a: 1\n\n# about b\n# more about b\n"


def test_the_comment_above_a_middle_key_moves_to_the_next(tmp_path: Path) -> None:
    text = "a: 1\n# about b\nb: 2\n# about c\nc: 3\n"
    assert render_without(tmp_path, text, "b") == "a: 1\n# about b\n# about c\nc: 3\n"


def test_a_missing_key_is_nothing_to_do(tmp_path: Path) -> None:
    text = "a: 1  # one\n"
    assert render_without(tmp_path, text, "b") == text


def test_the_shipped_files_rollout_notes_survive_removing_a_plan(tmp_path: Path) -> None:
    shipped = (ROOT / "routing.yaml").read_text()
    plan = "rollout: {candidate: v2.4.0, steps: [10, 50, 100], interval: 30s}\n"
    assert render_without(tmp_path, shipped + plan, "rollout") == shipped
