"""A bare clone runs its own tests: nothing in the code, tests or docs reads outside the
repository, and the vendored third-party formats are the published bytes."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from tests.support.contracts import CALCOM, CONTRACTS, RETELL

ROOT = Path(__file__).resolve().parents[2]
# `../shared` (the steering folder beside a checkout) or a path climbing above the repository.
OUTSIDE = re.compile(r"\.\./shared\b|parents\[(?:[3-9]|\d\d)\]")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".sh", ".txt", ""}


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def test_no_file_points_outside_the_repository() -> None:
    offenders = []
    this = Path(__file__).resolve()
    for path in _tracked_files():
        if path.suffix not in TEXT_SUFFIXES or path.resolve() == this:
            continue
        if CONTRACTS in path.resolve().parents:
            continue  # the vendored sources describe where they came from
        text = path.read_text(errors="replace")
        offenders += [
            f"{path.relative_to(ROOT)}:{number}"
            for number, line in enumerate(text.splitlines(), 1)
            if OUTSIDE.search(line)
        ]
    assert offenders == []


def test_the_pattern_catches_what_it_should() -> None:
    assert OUTSIDE.search("see ../shared/contracts/x.json")
    assert OUTSIDE.search("Path(__file__).resolve().parents[3] / 'shared'")
    assert not OUTSIDE.search("Path(__file__).resolve().parents[2]")


def test_vendored_calcom_files_are_the_published_bytes() -> None:
    sources = (CALCOM / "SOURCES.md").read_text()
    listed = dict(
        (name, digest)
        for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+)$", sources, flags=re.M)
    )
    assert len(listed) == 6
    for name, digest in listed.items():
        assert hashlib.sha256((CALCOM / name).read_bytes()).hexdigest() == digest, name


def test_vendored_retell_files_are_present_and_described() -> None:
    sources = (RETELL / "SOURCES.md").read_text()
    payloads = sorted(p.name for p in RETELL.glob("*.json"))
    assert len(payloads) == 6
    for name in payloads:
        assert f"`{name}`" in sources, name
