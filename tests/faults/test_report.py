"""The fault table's recorder and renderer (tests/faults/report.py): pure, no servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.report import (
    ENV,
    FaultRecord,
    main,
    read_records,
    record_fault,
    render,
)


def record(fault: str, **figures: object) -> FaultRecord:
    base: dict[str, object] = dict(
        sent=10, accepted=8, refused=2, errors_500=0, lost=0, duplicated=0, recover_s=1.0
    )
    base.update(figures)
    return FaultRecord(fault, **base)  # type: ignore[arg-type]


def table_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert lines[1].startswith("|---")
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]


def test_one_record_is_one_row_with_every_column() -> None:
    text = render(
        [record("kill -9 booking", sent=180, accepted=120, refused=60, recover_s=2.345, note="x")]
    )
    header = text.splitlines()[0]
    assert header == (
        "| fault | runs | requests sent | accepted | clean refusals | 500s | lost | duplicated "
        "| time to recover | note |"
    )
    assert table_rows(text) == [
        ["kill -9 booking", "1", "180", "120", "60", "0", "0", "0", "2.35 s", "x"]
    ]


def test_a_fault_recorded_twice_shows_ranges_and_both_notes_in_first_seen_order() -> None:
    text = render(
        [
            record("redis", sent=300, accepted=300, refused=0, recover_s=12.04, note="sqlite"),
            record("db", sent=5, recover_s=None),
            record("redis", sent=280, accepted=280, refused=0, recover_s=9.5, note="mysql"),
        ]
    )
    assert table_rows(text) == [
        ["redis", "2", "280-300", "280-300", "0", "0", "0", "0", "9.50-12.0 s", "sqlite / mysql"],
        ["db", "1", "5", "8", "2", "0", "0", "0", "n/a", ""],
    ]


def test_equal_figures_are_not_a_range_and_a_missing_time_is_said() -> None:
    text = render(
        [
            record("f", recover_s=0.061, note="same"),
            record("f", recover_s=0.064, note="same"),
            record("f", recover_s=None, note="same"),
        ]
    )
    assert table_rows(text) == [
        ["f", "3", "10", "8", "2", "0", "0", "0", "0.06 s (n/a in 1)", "same"]
    ]


def test_a_defect_is_shown_not_smoothed() -> None:
    text = render([record("f", errors_500=0), record("f", errors_500=3, lost=1, duplicated=2)])
    assert table_rows(text)[0][5:8] == ["0-3", "0-1", "0-2"]


def test_notes_alike_but_for_their_numbers_merge_into_ranges() -> None:
    notes = [
        "2 unacknowledged, exited in 1.2 s, drain 0.5 s",
        "3 unacknowledged, exited in 1.1 s, drain 0.5 s",
        "other words",
        "2 unacknowledged, exited in 1.25 s, drain 0.5 s",
    ]
    text = render([record("f", note=note) for note in notes])
    assert table_rows(text)[0][-1] == (
        "2-3 unacknowledged, exited in 1.1-1.25 s, drain 0.5 s / other words"
    )


def test_pipes_in_a_note_do_not_break_the_table() -> None:
    assert table_rows(render([record("a|b", note="x | y")]))[0][0] == "a\\|b"


def test_record_fault_does_nothing_without_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    record_fault(
        "f", sent=1, accepted=1, refused=0, errors_500=0, lost=0, duplicated=0, recover_s=None
    )
    assert list(tmp_path.iterdir()) == []


def test_record_fault_appends_json_lines_that_main_prints_as_the_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "var" / "faults.jsonl"
    monkeypatch.setenv(ENV, str(target))
    for sent in (4, 6):
        record_fault(
            "kill -9",
            sent=sent,
            accepted=sent - 1,
            refused=1,
            errors_500=0,
            lost=0,
            duplicated=0,
            recover_s=1.23456,
            note="refused: connection refused",
        )
    lines = target.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["fault"] == "kill -9" and first["sent"] == 4 and first["recover_s"] == 1.235
    assert "test_report.py::" in first["test"] and first["at"]
    assert read_records(lines)[1].sent == 6

    assert main([str(target)]) == 0
    out = capsys.readouterr().out
    assert table_rows(out)[0][:5] == ["kill -9", "2", "4-6", "3-5", "1"]


def test_main_fails_on_a_missing_or_empty_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "absent.jsonl")]) == 1
    (tmp_path / "empty.jsonl").write_text("\n")
    assert main([str(tmp_path / "empty.jsonl")]) == 1
    assert main([]) == 2
    assert capsys.readouterr().out == ""
