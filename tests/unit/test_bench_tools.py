"""The pure parts of `make bench`'s issue-17 sections: wrk's report parser, the soak's growth
measure, the scaling branch's appointment layout, the section selection, the table."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from shared.security.references import is_reference
from tests.bench.__main__ import selected_sections
from tests.bench.bottleneck import cores
from tests.bench.dataset import BOOK_TIMES, ZONE
from tests.bench.explain import JSON_HEAD, JSON_TAIL, abbreviated, without_json
from tests.bench.load import RunResult
from tests.bench.memory import soak_growth
from tests.bench.report import Figure, table
from tests.bench.scaling import growth
from tests.bench.scaling_data import (
    BOOKING_DAYS,
    WINDOW_DAYS,
    Layout,
    Position,
    interval,
    reference,
    working,
)
from tests.bench.wrk_load import parse

WRK_POST = """Running 10s test @ http://127.0.0.1:40411/v1/appointments
  2 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    61.20ms   20.11ms 301.50ms   80.00%
    Req/Sec   163.52     30.10   230.00     70.00%
  Latency Distribution
     50%   58.04ms
     75%   70.51ms
     90%   85.00ms
     99%    1.20s
  3270 requests in 10.02s, 2.10MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    326.35
Transfer/sec:    214.60KB
statuses: 201=3266 409=3 422=1
out of bodies: 0
"""

WRK_GET = """Running 5s test @ http://127.0.0.1:40412/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.07ms    2.19ms  13.86ms   85.75%
    Req/Sec   586.00    145.70   838.00     60.00%
  Latency Distribution
     50%  920.00us
     75%    2.94ms
     90%    4.97ms
     99%    9.84ms
  588 requests in 1.01s, 798.55KB read
Requests/sec:    583.87
Transfer/sec:    792.94KB
statuses: 200=588
out of bodies: 2
"""


def test_wrk_report_with_the_scripts_status_counts() -> None:
    result = parse(WRK_POST)
    assert result.requests == 3270
    assert result.seconds == pytest.approx(10.02)
    assert result.rate == pytest.approx(326.35)
    assert result.latency_ms == {
        50.0: pytest.approx(58.04),
        75.0: pytest.approx(70.51),
        90.0: pytest.approx(85.0),
        99.0: pytest.approx(1200.0),
    }
    assert result.non_2xx == 4
    assert result.socket_errors == {"connect": 0, "read": 1, "write": 0, "timeout": 2}
    assert result.statuses == {201: 3266, 409: 3, 422: 1}
    assert result.failed == 4 + 3  # 409 and 422 answers, read and timeout errors
    assert result.out_of_bodies == 0


def test_wrk_latency_units_and_a_clean_get_run() -> None:
    result = parse(WRK_GET)
    assert result.p(50) == pytest.approx(0.92)
    assert result.p(99) == pytest.approx(9.84)
    assert result.seconds == pytest.approx(1.01)
    assert result.non_2xx == 0
    assert result.socket_errors == {}
    assert result.failed == 0
    assert result.out_of_bodies == 2


def test_wrk_report_without_figures_parses_to_nan() -> None:
    result = parse("unable to connect to 127.0.0.1:1 Connection refused\n")
    assert result.requests == 0
    assert math.isnan(result.rate) and math.isnan(result.p(99))


def _samples(values: list[float], every: float = 10.0) -> list[tuple[float, float]]:
    return [(i * every, value) for i, value in enumerate(values)]


def test_soak_growth_compares_the_last_minute_with_the_first_after_warm_up() -> None:
    # 0..50 s warm-up (ignored, however high), 60..110 s first minute, 550..600 s last.
    values = [500.0] * 6 + [100.0] * 6 + [103.0] * 43 + [106.0] * 6
    first, last, grown = soak_growth(_samples(values), warmup_s=60)
    assert (first, last) == (100.0, 106.0)
    assert grown == pytest.approx(6.0)


def test_soak_growth_of_a_flat_and_of_a_shrinking_series() -> None:
    assert soak_growth(_samples([80.0] * 61), warmup_s=60) == (80.0, 80.0, 0.0)
    shrinking = [120.0] * 6 + [90.0] * 6 + [90.0] * 43 + [81.0] * 6
    assert soak_growth(_samples(shrinking), warmup_s=60)[2] == pytest.approx(-10.0)


def test_soak_growth_ignores_missing_samples_and_needs_samples_after_warm_up() -> None:
    values = [100.0] * 6 + [100.0, math.nan, 100.0, 100.0, 100.0, 100.0] + [110.0] * 6
    assert soak_growth(_samples(values), warmup_s=60)[2] == pytest.approx(10.0)
    first, last, grown = soak_growth(_samples([100.0] * 5), warmup_s=60)
    assert math.isnan(first) and math.isnan(last) and math.isnan(grown)


def test_layout_positions_never_overlap_per_staff_member() -> None:
    layout = Layout(staff=2, seed=7)
    positions = layout.take(layout.capacity)
    assert len(set(positions)) == len(positions) == layout.capacity
    by_staff: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for position in positions:
        by_staff[position.staff].append(interval(position))
    assert sorted(by_staff) == [0, 1]
    for intervals in by_staff.values():
        intervals.sort()
        for (_, end), (start, _) in pairwise(intervals):
            assert end <= start
    with pytest.raises(RuntimeError, match="exhausted"):
        layout.take(1)


def test_layout_fills_the_window_first_and_keeps_the_booking_days_free() -> None:
    layout = Layout(staff=5, seed=11, window_per_staff_day=2)
    working_days = [day for day in WINDOW_DAYS if working(day)]
    assert len(working_days) in (12, 13)  # 15 days hold 2 or 3 Sundays
    first = layout.take(len(working_days) * 5 * 2)
    assert {p.day for p in first} == set(working_days)
    for day in working_days:
        for staff in range(5):
            assert len([p for p in first if (p.day, p.staff) == (day, staff)]) == 2
    rest = layout.take(layout.capacity - layout.taken)
    assert not {p.day for p in rest} & (set(WINDOW_DAYS) | set(BOOKING_DAYS))
    assert min(p.day for p in rest) == -365 or min(p.day for p in rest) == -364
    assert all(working(p.day) for p in first + rest)


def test_layout_is_the_same_for_the_same_seed_and_taken_in_stages() -> None:
    whole = Layout(staff=3, seed=5).take(3000)
    staged = Layout(staff=3, seed=5)
    assert staged.take(1000) + staged.take(2000) == whole
    assert Layout(staff=3, seed=6).take(3000) != whole


def test_interval_is_the_grid_slot_in_berlin_as_utc() -> None:
    start, end = interval(Position(staff=0, day=3, slot=0))
    local = start.astimezone(ZONE)
    assert local.time() == BOOK_TIMES[0]
    assert local.date() == datetime.now(ZONE).date() + timedelta(days=3)
    assert end - start == timedelta(minutes=30)


def test_seeded_references_are_valid_and_distinct() -> None:
    codes = [reference(n) for n in range(20_000)]
    assert len(set(codes)) == 20_000
    assert all(is_reference(code) for code in codes)
    assert reference(0) == "AAAAAA" and reference(1) == "AAAAAB"


def test_soak_runs_only_when_named() -> None:
    default = selected_sections(None)
    assert "soak" not in default and {"scaling", "wrk"} <= default
    assert selected_sections("soak") == frozenset({"soak"})
    assert selected_sections("scaling, wrk") == frozenset({"scaling", "wrk"})
    with pytest.raises(ValueError, match="unknown section 'soaks'"):
        selected_sections("soaks")


def test_table_shows_figures_without_target_and_new_units() -> None:
    text = table(
        [
            Figure("wrk p50", 4.0, 2.0, None, "ms"),
            Figure("rss", 151.25, None, 150, "MB"),
            Figure("growth", 1.234, 2.0, 1.5, "x"),
        ]
    )
    rows = {line.split("  ")[0]: line.split() for line in text.splitlines()}
    assert rows["wrk p50"][-2:] == ["-", "info"]
    assert rows["rss"][1:3] == ["151.2", "MB"] and rows["rss"][-1] == "MISS"
    assert rows["growth"][1] == "1.23x" and rows["growth"][-1] == "PASS"


def test_cores_in_use_are_cpu_per_request_times_the_rate() -> None:
    run = RunResult("mix", 20, latencies_ms=[5.0] * 300, wall_s=2.0, cpu_ms={"server": 6.0})
    # 300 requests in 2 s = 150/s; 6 ms each: 0.9 of a core.
    assert cores(run, "server") == pytest.approx(0.9)
    assert math.isnan(cores(run, "mariadb"))
    text = table([Figure("B server", 0.9, None, 0.85, "cores", higher_is_better=True)])
    assert "0.90 cores" in text and "≥ 0.85 cores" in text and text.count("PASS") == 1


def test_explain_text_shortens_id_lists_and_drops_json_for_the_terminal() -> None:
    ids = [f"'{n:08x}-0000-4000-8000-000000000000'" for n in range(50)]
    statement = f"SELECT 1 FROM appointments WHERE staff_id IN ({', '.join(ids)}) AND x = 'a'"
    assert abbreviated(statement) == (
        f"SELECT 1 FROM appointments WHERE staff_id IN ({ids[0]}, ... (50 ids)) AND x = 'a'"
    )
    assert abbreviated("IN ('a', 'b')") == "IN ('a', 'b')"
    text = f'-- statement 1\nplan\n{JSON_HEAD}{{\n "x": 1\n}}{JSON_TAIL}\n-- statement 2\nplan 2\n'
    assert without_json(text) == "-- statement 1\nplan\n\n-- statement 2\nplan 2\n"


def test_scaling_growth_ratio() -> None:
    assert growth(15.0, 10.0) == pytest.approx(1.5)
    assert math.isnan(growth(15.0, 0.0))
    assert math.isnan(growth(math.nan, 10.0)) and math.isnan(growth(10.0, math.nan))
