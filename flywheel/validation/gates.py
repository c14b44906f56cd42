"""What every data gate shares: the failure records, one committed checkpoint run, the gate's summary
and its message, and :class:`GateFailed`.

The gates themselves: :mod:`flywheel.validation.landing_gate` (raw files) and
:mod:`flywheel.validation.features_gate` (the Spark job's output). A gate runs its Great Expectations
checkpoints plus a few checks GX cannot express cheaply (readable files, integral values, the
features manifest's row arithmetic), reports all of them in one summary, and then either publishes
the partition or quarantines it and raises :class:`GateFailed` saying what failed, where the data
and the Data Docs are, and what to do. Many days at once: :mod:`flywheel.validation.batch`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import config
from flywheel.validation import suites
from flywheel.validation.data_docs import (  # noqa: F401  (re-exported: flywheel.validation's names)
    batched_data_docs,
    data_docs_index,
    docs_lock,
    get_context,
    gx_home,
    publish_results,
)

if TYPE_CHECKING:
    import pandas as pd

# The summary's field listing where a failed day's data went.
QUARANTINED = "quarantine"  # not a lake zone
MAX_EXAMPLES = 5
# Failures listed in the exception message; _validation.json has all of them.
MAX_LISTED = 12


class GateFailed(RuntimeError):
    """A partition failed a data gate; it has been quarantined. The message says what to do next."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def examples(values: list[Any] | None) -> list[Any]:
    return json.loads(json.dumps(list(values or [])[:MAX_EXAMPLES], default=str))


def failure(check: str, column: Any = None, table: str | None = None, **details: Any) -> dict[str, Any]:
    return {"check": check, "column": column, "table": table, **{k: v for k, v in details.items() if v is not None}}


def _from_gx(table: str, result: Any) -> dict[str, Any]:
    """One failed ExpectationValidationResult -> a small JSON-able failure record."""
    conf = result.expectation_config
    kwargs = conf.kwargs
    res = result.result or {}
    exc = result.exception_info or {}
    # exception_info is either {"raised_exception": ..., "exception_message": ...} or keyed by metric.
    messages = []
    if exc.get("raised_exception"):
        messages.append(exc.get("exception_message"))
    else:
        messages += [
            v.get("exception_message") for v in exc.values() if isinstance(v, dict) and v.get("raised_exception")
        ]
    expected = {k: kwargs[k] for k in ("min_value", "max_value", "type_list") if k in kwargs}
    if "value_set" in kwargs:
        expected["value_set_size"] = len(kwargs["value_set"])
    return failure(
        conf.type,
        column=kwargs.get("column", kwargs.get("column_list")),
        table=table,
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        # A null check's examples are all null: nothing to show.
        examples=None if conf.type.endswith("not_be_null") else examples(res.get("partial_unexpected_list")) or None,
        observed_value=json.loads(json.dumps(res.get("observed_value"), default=str)),
        expected=expected or None,
        error="; ".join(m for m in messages if m) or None,
    )


def run_checkpoint(
    name: str, frame: pd.DataFrame, params: dict[str, Any], ds: dt.date, settings: config.Settings
) -> dict[str, Any]:
    """Run one committed checkpoint on ``frame``; returns counts, failures and the result id.

    The checkpoint's validation definitions run and store their results; its one action (the Data
    Docs update) runs here, at once or at the end of :func:`batched_data_docs`.
    """
    context = get_context(settings)  # first: imports GX quietly
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    checkpoint = context.checkpoints.get(name)
    # A unique run name per run keeps parallel validations of different days (or reruns) from
    # writing the same validation-result file.
    run_id = RunIdentifier(run_name=f"{ds.isoformat()}-{uuid.uuid4().hex[:8]}")
    if any(not isinstance(action, UpdateDataDocsAction) for action in checkpoint.actions):
        # Someone added another action (Slack, email, ...): GX runs them all, docs included.
        with docs_lock(settings):
            results = dict(
                checkpoint.run(
                    batch_parameters={"dataframe": frame}, expectation_parameters=params, run_id=run_id
                ).run_results
            )
        return checkpoint_summary(name, results)
    if not checkpoint.validation_definitions:
        raise ValueError(
            f"checkpoint {name} in {settings.gx_dir} has no validation definitions: nothing would be checked"
        )
    results = {}
    # Under the docs lock: GX writes a result file in place, and a docs build elsewhere reads them all.
    with docs_lock(settings):
        for definition in checkpoint.validation_definitions:
            result = definition.run(
                checkpoint_id=checkpoint.id,
                batch_parameters={"dataframe": frame},
                expectation_parameters=params,
                result_format=checkpoint.result_format,
                run_id=run_id,
            )
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
                run_id=run_id,
                batch_identifier=result.batch_id,
            )
            results[key] = result
    publish_results(settings, list(results))
    return checkpoint_summary(name, results)


def checkpoint_summary(name: str, results: dict[Any, Any]) -> dict[str, Any]:
    table = suites.SUITE_ASSETS[name]
    evaluated = successful = 0
    failures: list[dict[str, Any]] = []
    ids = []
    for identifier, suite_result in results.items():
        ids.append(str(identifier))
        stats = suite_result.statistics
        evaluated += int(stats["evaluated_expectations"])
        successful += int(stats["successful_expectations"])
        failures += [_from_gx(table, r) for r in suite_result.results if not r.success]
    return {
        "suite": name,
        "success": all(r.success for r in results.values()),
        "evaluated": evaluated,
        "successful": successful,
        "failures": _collapse_missing_columns(failures),
        "validation_results": ids,
    }


def _collapse_missing_columns(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A missing column makes every other check on it error out: report it once, first."""

    def columns(f: dict[str, Any]) -> set[str]:
        col = f.get("column")
        return set(col) if isinstance(col, list) else {col} if col else set()

    out = [f for f in failures if f["check"] == "expect_column_to_exist"]
    missing = {f["column"] for f in out}
    for f in out:
        skipped = [g for g in failures if g is not f and f["column"] in columns(g)]
        if skipped:
            f["detail"] = f"column is missing; {len(skipped)} other check(s) on it could not run"
    out += [f for f in failures if f["check"] != "expect_column_to_exist" and not columns(f) & missing]
    return out


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _describe(failure: dict[str, Any]) -> str:
    where = f"{failure.get('table')}.{failure['column']}" if failure.get("column") else str(failure.get("table"))
    parts = [f"{failure['check']} on {where}"]
    if failure.get("unexpected_count") is not None:
        parts.append(f"{failure['unexpected_count']} unexpected row(s)")
    if failure.get("examples"):
        parts.append(f"e.g. {failure['examples']}")
    if failure.get("observed_value") is not None:
        parts.append(f"observed {failure['observed_value']}")
    if failure.get("expected"):
        parts.append(f"expected {failure['expected']}")
    if failure.get("error"):
        parts.append(f"error: {failure['error']}")
    if failure.get("detail"):
        parts.append(str(failure["detail"]))
    return ": ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def gate_message(summary: dict[str, Any], next_step: str, extra: list[str] | None = None) -> str:
    failures = summary["failures"]
    exp = summary["expectations"]
    lines = [
        f"{summary['gate'].capitalize()} gate failed for {summary['partition']}: "
        f"{len(failures)} check(s) failed ({exp['failed']} of {exp['evaluated']} GX expectations).",
        *[f"  - {_describe(f)}" for f in failures[:MAX_LISTED]],
    ]
    if len(failures) > MAX_LISTED:
        lines.append(f"  ... and {len(failures) - MAX_LISTED} more (all listed in _validation.json)")
    lines += extra or []
    lines += [
        "Quarantined: " + ", ".join(summary[QUARANTINED]) + " (details in _validation.json there)",
        f"Data Docs: {summary['data_docs']}",
        f"Next: {next_step}",
    ]
    return "\n".join(lines)


def gate_summary(
    gate: str,
    day: dt.date,
    partition: str,
    runs: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    settings: config.Settings,
) -> dict[str, Any]:
    evaluated = sum(r["evaluated"] for r in runs)
    successful = sum(r["successful"] for r in runs)
    return {
        "gate": gate,
        "ds": day.isoformat(),
        "partition": partition,
        "success": not failures,
        "expectations": {"evaluated": evaluated, "successful": successful, "failed": evaluated - successful},
        "checks_failed": len(failures),
        "failures": failures,
        "suites": {
            r["suite"]: {k: r[k] for k in ("success", "evaluated", "successful", "validation_results")} for r in runs
        },
        "data_docs": str(data_docs_index(settings)),
    }


def ds_params(day: dt.date) -> dict[str, int]:
    return {"ds_year": day.year, "ds_month": day.month, "ds_day": day.day}
