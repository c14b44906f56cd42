"""The GX gate on the training set: a Great Expectations suite run on the assembled window.

An ephemeral context is enough here: the training set is a frame in memory, judged once before
training, and its verdict goes to the task log and XCom (the daily partitions already have their
own checkpoints and Data Docs).
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from flywheel import config, features, schema
from flywheel.training.data import MIN_TRAIN_ROWS, MODEL_FEATURES, TrainingDataError, TrainingSet, gate_checks

SUITE = "flights_training_set"
MAX_LISTED = 12


def import_gx() -> ModuleType:
    """GX without usage statistics (no network) and without its import-time INFO flood."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    config.env_setdefault(GX_ANALYTICS_ENABLED="false")
    import great_expectations as gx

    return gx


def build_suite(ts: TrainingSet, settings: config.Settings, min_rows: int = MIN_TRAIN_ROWS) -> Any:
    """The expectations a training window must meet (row count, label, key columns, window days)."""
    gx = import_gx()
    E = gx.expectations
    suite = gx.ExpectationSuite(name=SUITE)
    suite.add_expectation(E.ExpectTableRowCountToBeBetween(min_value=min_rows))
    suite.add_expectation(E.ExpectColumnValuesToBeInSet(column=schema.LABEL, value_set=[0, 1]))
    suite.add_expectation(
        E.ExpectColumnMeanToBeBetween(
            column=schema.LABEL, min_value=settings.min_label_rate, max_value=settings.max_label_rate
        )
    )
    suite.add_expectation(E.ExpectColumnValuesToBeInSet(column="ds", value_set=[d.isoformat() for d in ts.days]))
    for col in ("ds", schema.LABEL, *features.CATEGORICAL_FEATURES):
        suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column=col))
    for col in (c for c in features.REQUIRED_NON_NULL if c in MODEL_FEATURES):
        suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column=col))
    for col, (low, high) in features.RANGES.items():
        if col in MODEL_FEATURES:
            suite.add_expectation(E.ExpectColumnValuesToBeBetween(column=col, min_value=low, max_value=high))
    return suite


def validate_training_set(
    ts: TrainingSet, settings: config.Settings | None = None, min_rows: int = MIN_TRAIN_ROWS
) -> dict[str, Any]:
    """Run the suite (plus :func:`gate_checks`) on the training set; returns a JSON-able summary.

    Raises TrainingDataError listing every failed expectation and check.
    """
    settings = settings or config.load()
    gx = import_gx()
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("training")
    asset = source.add_dataframe_asset(SUITE)
    batch = asset.add_batch_definition_whole_dataframe("window").get_batch(batch_parameters={"dataframe": ts.frame})
    result = batch.validate(build_suite(ts, settings, min_rows))

    failures: list[str] = []
    for res in result.results:
        if res.success:
            continue
        cfg = res.expectation_config
        column = cfg.kwargs.get("column")
        observed = res.result.get("observed_value", res.result.get("unexpected_count"))
        failures.append(f"{cfg.type}" + (f"({column})" if column else "") + f": observed {observed}")
    checks = gate_checks(ts, settings, min_rows)
    summary = {
        "suite": SUITE,
        "window": [ts.start.isoformat(), ts.as_of.isoformat()],
        "rows": len(ts.frame),
        "success": not failures and not checks,
        "evaluated_expectations": len(result.results),
        "failed_expectations": failures,
        "failed_checks": checks,
        "content_hash": ts.content_hash,
    }
    if not summary["success"]:
        listed = (failures + checks)[:MAX_LISTED]
        more = len(failures) + len(checks) - len(listed)
        raise TrainingDataError(
            f"training set {ts.start}..{ts.as_of} ({len(ts.frame)} rows) failed the training gate: "
            + "; ".join(listed)
            + (f"; and {more} more" if more > 0 else "")
            + ". Fix or rebuild the features of the window (flights_features DAG), or move the window."
        )
    return summary
