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
the same frames (:func:`flywheel.validation.per_day.per_day_checks`). A suite with any other expectation is not split
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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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
# Expectation type -> kwargs, computed on each day by per_day.per_day_checks (also a ROW_WISE type with a $PARAMETER).
PER_DAY: dict[str, frozenset[str]] = {
    "expect_table_row_count_to_be_between": frozenset({"min_value", "max_value"}),
    "expect_column_values_to_be_between": frozenset({"column", "min_value", "max_value"}),
    "expect_column_mean_to_be_between": frozenset({"column", "min_value", "max_value"}),
}
# Splits of failed batches per suite and range: about 2 x log2(days) per bad day (see validate_batches).
MAX_SPLITS = 40
# A failed batch of fewer days goes to the one-day gate at once: splitting it would cost about as much.
MIN_SPLIT = 8
# Columns per GX validation of a batch (see _chunks).
CHUNK_COLUMNS = 8


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

    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    run_id = RunIdentifier(run_name=f"{days[0].isoformat()}-to-{days[-1].isoformat()}-{uuid.uuid4().hex[:8]}")
    result = _validate_in_chunks(suite, frame)
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


def _chunks(suite: SuitePlan, frame: pd.DataFrame) -> list[tuple[pd.DataFrame, list[Any]]]:
    """The batch expectations with the part of ``frame`` each needs: the columns it judges.

    GX's pandas engine copies the whole frame for each column check (dropping the column's nulls),
    so one validation over a year of 59 features costs columns x checks (about 20 s); a check of a
    column judges only that column's values, so it gives the same result on a frame of a few
    columns (about 4 s in all). Column existence is judged on the frame's columns with no rows,
    and so are checks of a missing column (they fail, as on the whole frame).
    """
    header: list[Any] = []
    by_columns: dict[tuple[str, ...], list[Any]] = {}
    for expectation in suite.batch.expectations:
        kwargs = expectation.configuration.kwargs
        columns = tuple(kwargs.get("column_list") or [kwargs["column"]])
        if expectation.configuration.type == "expect_column_to_exist" or not set(columns) <= set(frame.columns):
            header.append(expectation)
        else:
            by_columns.setdefault(columns, []).append(expectation)
    chunks = [(frame.iloc[:0], header)] if header else []
    singles = [c for c in by_columns if len(c) == 1]
    for start in range(0, len(singles), CHUNK_COLUMNS):
        part = singles[start : start + CHUNK_COLUMNS]
        chunks.append((frame[[c[0] for c in part]], [e for c in part for e in by_columns[c]]))
    chunks += [(frame[list(c)], expectations) for c, expectations in by_columns.items() if len(c) > 1]
    return chunks


def _validate_in_chunks(suite: SuitePlan, frame: pd.DataFrame) -> Any:
    """One suite result (in the suite's order) for the batch expectations, validated chunk by chunk."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.validator.v1_validator import Validator
    from great_expectations.validator.validator import calc_validation_statistics

    results: list[Any] = []
    meta, batch_id = {}, None
    for part, expectations in _chunks(suite, frame):
        validator = Validator(
            batch_definition=suite.definition.batch_definition,
            batch_parameters={"dataframe": part},
            result_format=suite.result_format,
        )
        chunk = ExpectationSuite(name=suite.name, expectations=[copy.copy(e) for e in expectations])
        validated = validator.validate_expectation_suite(chunk, {})
        results += validated.results
        if len(part) or batch_id is None:  # the batch's markers of a part with the rows
            meta, batch_id = validated.meta, validated.batch_id
    order = {e.id: n for n, e in enumerate(suite.batch.expectations)}
    results.sort(key=lambda r: order[r.expectation_config.id])
    stats = calc_validation_statistics(results)
    return ExpectationSuiteValidationResult(
        results=results,
        success=stats.success,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": stats.evaluated_expectations,
            "successful_expectations": stats.successful_expectations,
            "unsuccessful_expectations": stats.unsuccessful_expectations,
            "success_percent": stats.success_percent,
        },
        meta=dict(meta),
        batch_id=batch_id,
    )


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
