"""What a range's gate does day by day: the per-day checks in pandas, the summary of a day cleared
by its batches (shaped as a one-day gate's), and the one-day gate for the days not cleared.

See :mod:`flywheel.validation.batch` for why a batch's verdict plus these checks give each day the
verdict of its one-day gate.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flywheel import config
from flywheel.validation import gates

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.validation.batch import SuitePlan

# A per-day mean this close to a bound is left to GX (the one-day gate): float sums differ in the last bits.
MEAN_MARGIN = 1e-9


@dataclass
class DaysResult:
    """What a gate did with each day (``YYYY-MM-DD`` keys)."""

    passed: dict[str, dict[str, Any]] = field(default_factory=dict)  # the day's gate summary
    failed: dict[str, Exception] = field(default_factory=dict)  # GateFailed, or the error of a day not there
    batched: list[str] = field(default_factory=list)  # days published from batch validations
    alone: list[str] = field(default_factory=list)  # days that went through the one-day gate


def _resolve(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        if value["$PARAMETER"] not in params:
            raise ValueError(f"suite parameter {value['$PARAMETER']!r} has no value for this day")
        return params[value["$PARAMETER"]]
    return value


def _within(value: float, lo: float | None, hi: float | None, margin: float = 0.0) -> bool:
    return (lo is None or value >= lo + margin) and (hi is None or value <= hi - margin)


def per_day_checks(suite: SuitePlan, frame: pd.DataFrame, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-day part of ``suite`` on one day's frame: a record per check, with ``success``.

    At least as strict as GX on the day (a non-number where a number is checked fails here), so a
    day passing here passes these expectations in its one-day gate.
    """
    import pandas as pd

    out = []
    for conf in suite.per_day:
        kwargs = {k: _resolve(v, params) for k, v in conf.kwargs.items()}
        lo, hi, column = kwargs.get("min_value"), kwargs.get("max_value"), kwargs.get("column")
        record: dict[str, Any] = {
            "check": conf.type,
            "column": column,
            "table": suite.table,
            "expected": {"min_value": lo, "max_value": hi},
        }
        if conf.type == "expect_table_row_count_to_be_between":
            record["observed_value"] = len(frame)
            record["success"] = _within(len(frame), lo, hi)
        elif column not in frame.columns:
            record.update(observed_value=None, success=False, detail="column is missing")
        else:
            raw = frame[column]
            values = pd.to_numeric(raw, errors="coerce")
            not_numbers = int((values.isna() & raw.notna()).sum())
            if conf.type == "expect_column_mean_to_be_between":
                mean = float(values.mean()) if values.notna().any() else math.nan
                record["observed_value"] = None if math.isnan(mean) else mean
                record["success"] = not not_numbers and not math.isnan(mean) and _within(mean, lo, hi, MEAN_MARGIN)
            else:  # values between: GX ignores nulls (a not-null check covers them)
                present = values.dropna()
                outside = int((~present.between(-math.inf if lo is None else lo, math.inf if hi is None else hi)).sum())
                record["unexpected_count"] = outside + not_numbers
                record["success"] = record["unexpected_count"] == 0
        out.append(record)
    return out


def day_summary(
    gate: str,
    day: dt.date,
    partition: str,
    runs: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]],
    settings: config.Settings,
) -> dict[str, Any]:
    """The summary of a day that passed its batches and per-day checks, shaped as a one-day gate's:
    each suite counts its batch expectations plus its per-day checks, so the totals are the same."""
    counted = [
        {**run, "evaluated": run["evaluated"] + len(checks), "successful": run["successful"] + len(checks)}
        for run, checks in runs
    ]
    summary = gates.gate_summary(gate, day, partition, counted, [], settings)
    summary["batch"] = {
        "suites": {run["suite"]: run["batch"] for run, _ in runs},
        "per_day_checks": [check for _, checks in runs for check in checks],
    }
    return summary


def one_by_one(
    days: Sequence[dt.date],
    gate: Callable[[dt.date, config.Settings], dict[str, Any]],
    errors: tuple[type[Exception], ...],
    settings: config.Settings,
    result: DaysResult,
) -> DaysResult:
    """The one-day gate on each of ``days``; a day whose gate raises one of ``errors`` failed."""
    for day in days:
        key = day.isoformat()
        result.alone.append(key)
        try:
            result.passed[key] = gate(day, settings)
        except errors as exc:
            result.failed[key] = exc
    return result
