"""docs/RELIABILITY.md points at tests that exist: a row whose test was renamed or removed fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _cited_tests() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    return NODE.findall(text)


def test_every_row_of_the_reliability_table_names_a_test():
    rows = [line for line in (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| case ")]
    assert len(rows) > 50
    assert [row for row in rows if not NODE.search(row)] == []


def test_every_test_the_reliability_table_cites_exists():
    missing = []
    for path, name in _cited_tests():
        source = ROOT / path
        if not source.is_file() or not re.search(rf"^\s*(async )?def {name}\(", source.read_text(encoding="utf-8"), re.M):
            missing.append(f"{path}::{name}")
    assert missing == []
