"""The fault table of issue 14: each fault test records what it measured, `make faults` prints
the table.

`record_fault(...)` appends one JSON line to the file named by FAULT_REPORT (nothing without
it, so the tests cost nothing extra in `make test`). `python -m tests.faults.report FILE` reads
such a file and prints a markdown table, one row per fault in the order first recorded; a fault
recorded several times (the sqlite and mysql params of one test) shows each figure as a range
"min-max"; notes that differ only in their numbers are merged the same way ("exited in
1.1-1.3 s"), other distinct notes are joined with " / ".
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV = "FAULT_REPORT"
NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
COUNTS = ("sent", "accepted", "refused", "errors_500", "lost", "duplicated")
HEADER = (
    "fault",
    "runs",
    "requests sent",
    "accepted",
    "clean refusals",
    "500s",
    "lost",
    "duplicated",
    "time to recover",
    "note",
)


@dataclass(frozen=True)
class FaultRecord:
    fault: str
    sent: int
    accepted: int
    refused: int
    errors_500: int
    lost: int
    duplicated: int
    recover_s: float | None
    note: str = ""
    test: str = ""
    at: str = ""

    @classmethod
    def from_json(cls, line: str) -> FaultRecord:
        data: dict[str, Any] = json.loads(line)
        recover = data.get("recover_s")
        return cls(
            fault=str(data["fault"]),
            **{name: int(data[name]) for name in COUNTS},
            recover_s=None if recover is None else float(recover),
            note=str(data.get("note") or ""),
            test=str(data.get("test") or ""),
            at=str(data.get("at") or ""),
        )


def record_fault(
    fault: str,
    *,
    sent: int,
    accepted: int,
    refused: int,
    errors_500: int,
    lost: int,
    duplicated: int,
    recover_s: float | None,
    note: str = "",
) -> None:
    """Append one measurement to $FAULT_REPORT (a JSON line); without it, do nothing."""
    target = os.environ.get(ENV)
    if not target:
        return
    record = FaultRecord(
        fault,
        sent,
        accepted,
        refused,
        errors_500,
        lost,
        duplicated,
        None if recover_s is None else round(recover_s, 3),
        note,
        test=os.environ.get("PYTEST_CURRENT_TEST", "").removesuffix(" (call)"),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")


def read_records(lines: Iterable[str]) -> list[FaultRecord]:
    return [FaultRecord.from_json(line) for line in lines if line.strip()]


def span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def seconds(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def recover_span(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    low, high = min(known), max(known)
    text = (
        f"{seconds(low)} s"
        if seconds(low) == seconds(high)
        else f"{seconds(low)}-{seconds(high)} s"
    )
    return text if len(known) == len(values) else f"{text} (n/a in {len(values) - len(known)})"


def merge_notes(notes: Sequence[str]) -> str:
    """Distinct notes in first-seen order; those alike but for their numbers become one, with
    a range where the numbers differ."""
    shapes: dict[tuple[str, ...], list[list[str]]] = {}
    for note in notes:
        parts = NUMBER.split(note)
        shapes.setdefault(tuple(parts[0::2]), []).append(parts[1::2])
    merged = []
    for words, numbers in shapes.items():
        text = words[0]
        for index, word in enumerate(words[1:]):
            seen = [found[index] for found in numbers]
            low, high = min(seen, key=float), max(seen, key=float)
            text += low if float(low) == float(high) else f"{low}-{high}"
            text += word
        merged.append(text)
    return " / ".join(merged)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(records: Sequence[FaultRecord]) -> list[list[str]]:
    """One row per fault, in the order each was first recorded."""
    by_fault: dict[str, list[FaultRecord]] = {}
    for record in records:
        by_fault.setdefault(record.fault, []).append(record)
    table = []
    for fault, runs in by_fault.items():
        notes = list(dict.fromkeys(r.note for r in runs if r.note))
        table.append(
            [
                fault,
                str(len(runs)),
                *(span([getattr(r, name) for r in runs]) for name in COUNTS),
                recover_span([r.recover_s for r in runs]),
                merge_notes(notes),
            ]
        )
    return table


def render(records: Sequence[FaultRecord]) -> str:
    """The markdown table (header, separator, one line per fault)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows(records)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m tests.faults.report FAULTS.jsonl", file=sys.stderr)
        return 2
    path = Path(args[0])
    if not path.exists():
        print(f"{path}: no such file (did any fault test run with {ENV} set?)", file=sys.stderr)
        return 1
    records = read_records(path.read_text(encoding="utf-8").splitlines())
    if not records:
        print(f"{path}: no fault recorded", file=sys.stderr)
        return 1
    print(render(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
