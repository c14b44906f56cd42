"""Gating many days at once: one GX validation per table over all the days, per-day checks in pandas.

A range run gates hundreds of days. GX's cost is mostly per validation (building the metric graph
of ~100 expectations, about 0.5 s), hardly per row, so one validation over the concatenated days
costs about what one day costs. That is sound only for expectations whose verdict over the
concatenation implies their verdict on every day:

- row-wise ones (column exists, type list, not null, between, in set): a bad row fails its own day
  and the concatenation alike, as long as the days of one batch agree on the columns and on the
  dtypes GX judges (a type-list check reads the dtype unless it is ``object``; then value by value);
- uniqueness: every part of a set of unique keys is unique.

Whatever is about one day as a whole (row count, label rate) or takes a per-day value (a suite
``$PARAMETER``: the partition's date, the bounds from settings) is computed per day, in pandas, on
the same frames (:func:`per_day_checks`). A suite with any other expectation is not split
(:class:`NotBatchable`; a unit test keeps the committed suites splittable).

The gates use this as a fast path only: a day is published from the batch when its batch passed
and every one of its per-day checks passed, with the same summary a one-day gate writes (the batch's
result ids included, so the Evidence tab links its Data Docs page). Any other day goes through the
one-day gate, which publishes it or quarantines it with the message a daily run gives. Since a
batch never passes what the one-day gate fails, every day passes or fails for the same reasons.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flywheel import config
from flywheel.validation import gates, suites
from flywheel.validation.data_docs import docs_lock, get_context, publish_results

if TYPE_CHECKING:
    import pandas as pd

# Expectation type -> the kwargs it may have to run over a concatenation of days.
ROW_WISE: dict[str, frozenset[str]] = {
    "expect_column_to_exist": frozenset({"column"}),
    "expect_column_values_to_be_in_type_list": frozenset({"column", "type_list"}),
    "expect_column_values_to_not_be_null": frozenset({"column"}),
    "expect_column_values_to_be_between": frozenset({"column", "min_value", "max_value"}),
    "expect_column_values_to_be_in_set": frozenset({"column", "value_set"}),
    "expect_compound_columns_to_be_unique": frozenset({"column_list"}),
}
# Expectation type -> kwargs, computed on each day by per_day_checks (also a ROW_WISE type with a $PARAMETER).
PER_DAY: dict[str, frozenset[str]] = {
    "expect_table_row_count_to_be_between": frozenset({"min_value", "max_value"}),
    "expect_column_values_to_be_between": frozenset({"column", "min_value", "max_value"}),
    "expect_column_mean_to_be_between": frozenset({"column", "min_value", "max_value"}),
}
# A per-day mean this close to a bound is left to GX (the one-day gate): float sums differ in the last bits.
MEAN_MARGIN = 1e-9
# Splits of failed batches per suite and range: about 2 x log2(days) per bad day (see validate_batches).
MAX_SPLITS = 40
# A failed batch of fewer days goes to the one-day gate at once: splitting it would cost about as much.
MIN_SPLIT = 8


class NotBatchable(Exception):
    """A suite (or its checkpoint) cannot be split into one batch validation plus per-day checks."""


@dataclass(frozen=True)
class SuitePlan:
    """A committed checkpoint's suite split in two: what runs once over all days, what runs per day."""

    name: str  # the checkpoint's and suite's name
    table: str
    batch: Any  # an in-memory ExpectationSuite (never saved) of the row-wise expectations
    per_day: tuple[Any, ...]  # ExpectationConfigurations evaluated on each day
    typed_columns: frozenset[str]  # columns whose dtype GX judges: the days of a batch must agree on them
    definition: Any  # the checkpoint's validation definition (batch definition, id)
    checkpoint_id: str | None
    result_format: Any


@dataclass
class DaysResult:
    """What a gate did with each day (``YYYY-MM-DD`` keys)."""

    passed: dict[str, dict[str, Any]] = field(default_factory=dict)  # the day's gate summary
    failed: dict[str, Exception] = field(default_factory=dict)  # GateFailed, or the error of a day not there
    batched: list[str] = field(default_factory=list)  # days published from batch validations
    alone: list[str] = field(default_factory=list)  # days that went through the one-day gate


def _parametrized(conf: Any) -> bool:
    return any(isinstance(v, dict) and "$PARAMETER" in v for v in conf.kwargs.values())


def plan(name: str, settings: config.Settings) -> SuitePlan:
    """Split the committed checkpoint ``name``'s suite; :class:`NotBatchable` says why it cannot be."""
    context = get_context(settings)  # first: imports GX quietly
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core import ExpectationSuite

    checkpoint = context.checkpoints.get(name)
    if any(not isinstance(action, UpdateDataDocsAction) for action in checkpoint.actions):
        raise NotBatchable(f"checkpoint {name} has actions besides the Data Docs update, and they run per day")
    if len(checkpoint.validation_definitions) != 1:
        raise NotBatchable(
            f"checkpoint {name} has {len(checkpoint.validation_definitions)} validation definitions, not 1"
        )
    definition = checkpoint.validation_definitions[0]
    batch, per_day = [], []
    for expectation in definition.suite.expectations:
        conf = expectation.configuration
        keys = set(conf.kwargs)
        if not _parametrized(conf) and keys <= ROW_WISE.get(conf.type, frozenset()):
            batch.append(copy.copy(expectation))
        elif keys <= PER_DAY.get(conf.type, frozenset()):
            per_day.append(conf)
        else:
            raise NotBatchable(f"suite {name}: {conf.type} with {sorted(keys)} is neither row-wise nor a per-day check")
    typed = frozenset(
        e.configuration.kwargs["column"]
        for e in batch
        if e.configuration.type == "expect_column_values_to_be_in_type_list"
    )
    return SuitePlan(
        name=name,
        table=suites.SUITE_ASSETS[name],
        batch=ExpectationSuite(name=definition.suite.name, expectations=batch),
        per_day=tuple(per_day),
        typed_columns=typed,
        definition=definition,
        checkpoint_id=checkpoint.id,
        result_format=checkpoint.result_format,
    )


def _signature(frame: pd.DataFrame, typed_columns: frozenset[str]) -> tuple[tuple[str, str], ...]:
    # Numbers of other columns may differ between int and float (a day with a null reads as float):
    # concatenated they become floats, and between/null/unique checks judge the same values.
    return tuple(
        (str(col), str(dtype) if col in typed_columns or dtype.kind not in "iuf" else "number")
        for col, dtype in frame.dtypes.items()
    )


def groups(frames: dict[dt.date, pd.DataFrame], suite: SuitePlan) -> list[list[dt.date]]:
    """The days in batches whose frames have the same columns (and dtypes where GX judges them)."""
    out: dict[tuple[tuple[str, str], ...], list[dt.date]] = {}
    for day in sorted(frames):
        out.setdefault(_signature(frames[day], suite.typed_columns), []).append(day)
    return list(out.values())


def run(
    suite: SuitePlan, frames: Sequence[pd.DataFrame], days: Sequence[dt.date], settings: config.Settings
) -> dict[str, Any]:
    """Validate the batch part of ``suite`` once over the concatenated ``frames`` of ``days``; the
    result is stored (and gets its Data Docs page) like a checkpoint's. Returns its summary."""
    import pandas as pd

    context = get_context(settings)
    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.validator.v1_validator import Validator

    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    run_id = RunIdentifier(run_name=f"{days[0].isoformat()}-to-{days[-1].isoformat()}-{uuid.uuid4().hex[:8]}")
    validator = Validator(
        batch_definition=suite.definition.batch_definition,
        batch_parameters={"dataframe": frame},
        result_format=suite.result_format,
    )
    result = validator.validate_expectation_suite(suite.batch, {})
    result.meta.update(
        validation_id=suite.definition.id,
        checkpoint_id=suite.checkpoint_id,
        run_id=run_id,
        validation_time=run_id.run_time,
        batch_parameters={"dataframe": DATAFRAME_REPLACEMENT_STR},
        flywheel_batch={"first": days[0].isoformat(), "last": days[-1].isoformat(), "days": len(days)},
    )
    suite_id = ExpectationSuiteIdentifier(name=suite.name)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=result.batch_id
    )
    # Under the docs lock: a docs build elsewhere reads every stored result.
    with docs_lock(settings):
        context.validation_results_store.store_validation_results(
            suite_validation_result=result,
            suite_validation_result_identifier=key,
            expectation_suite_identifier=suite_id,
        )
    publish_results(settings, [key])
    summary = gates.checkpoint_summary(suite.name, {key: result})
    summary["batch"] = {"first": days[0].isoformat(), "last": days[-1].isoformat(), "days": len(days)}
    return summary


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


def validate_batches(
    suite: SuitePlan, frames: dict[dt.date, pd.DataFrame], settings: config.Settings
) -> dict[dt.date, dict[str, Any]]:
    """Validate ``frames`` in batches: the days of the batches that passed, each with its batch's summary.

    A failed batch is split in two halves and each is validated again, so that a bad day among
    hundreds costs a few more validations instead of sending every day to the one-day gate; after
    :data:`MAX_SPLITS` splits (many bad days: the one-day gate is then as cheap), or below
    :data:`MIN_SPLIT` days, the days of a failed batch are left out, for the one-day gate.
    """
    passed: dict[dt.date, dict[str, Any]] = {}
    todo = groups(frames, suite)
    splits = 0
    while todo:
        days = todo.pop(0)
        summary = run(suite, [frames[d] for d in days], days, settings)
        if summary["success"]:
            passed.update(dict.fromkeys(days, summary))
        elif len(days) >= MIN_SPLIT and splits < MAX_SPLITS:
            splits += 1
            todo[:0] = [days[: len(days) // 2], days[len(days) // 2 :]]
        else:
            print(
                f"{suite.name}: the batch of {days[0]}..{days[-1]} ({len(days)} day(s)) failed "
                f"({len(summary['failures'])} check(s)): those days are gated one by one"
            )
    return passed
