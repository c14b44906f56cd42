"""flywheel.demo_summary: the plain-text tables the demo prints (tabulate, cells already formatted)."""

from __future__ import annotations

from flywheel.demo_summary import _fmt, _table


def test_a_table_left_aligns_formatted_cells_under_a_dashed_header() -> None:
    rows = [
        {"ds": "2013-02-01", "rows": 812, "v1": _fmt(0.7124), "v2": _fmt(float("nan"))},
        {"ds": "all", "rows": 9, "v1": _fmt(0.7), "v2": _fmt(0.6551)},
    ]
    assert _table(rows, ["ds", "rows", "v1", "v2"]).splitlines() == [
        "ds          rows    v1     v2",
        "----------  ------  -----  -----",
        "2013-02-01  812     0.712  -",
        "all         9       0.700  0.655",
    ]


def test_a_missing_cell_is_empty_and_the_columns_keep_their_order() -> None:
    table = _table([{"decision": "drift", "ds": "2013-03-04"}], ["ds", "signal", "decision"])
    assert table.splitlines() == [
        "ds          signal    decision",
        "----------  --------  ----------",
        "2013-03-04            drift",
    ]
