"""The third parties' published formats, vendored under `tests/contracts/` (sources noted in
each folder's SOURCES.md), so that a bare clone runs its own tests."""

from pathlib import Path

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
CALCOM = CONTRACTS / "calcom"
RETELL = CONTRACTS / "retell"
