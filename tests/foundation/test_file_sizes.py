"""No source file over 400 lines (issue 15): a module that grows past it is split by
responsibility, not scrolled through."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def test_no_source_file_is_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in ("shared", "services", "tools")
        for path in (ROOT / package).rglob("*.py")
    }
    assert len(sizes) > 150  # the scan sees the tree
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}
