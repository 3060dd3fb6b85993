"""Every source path the docs name exists: a moved module (issue 15) cannot leave the
architecture map, an ADR or the runbook pointing at a file that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATH = re.compile(r"(?<![\w./-])((?:services|shared|tools|tests)/[A-Za-z0-9_/]+\.py)")


def test_every_source_path_in_the_docs_exists() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    named = {
        (str(document.relative_to(ROOT)), match)
        for document in documents
        for match in PATH.findall(document.read_text(encoding="utf-8"))
    }
    assert len(named) > 40  # the docs do name source files
    assert sorted(entry for entry in named if not (ROOT / entry[1]).is_file()) == []
