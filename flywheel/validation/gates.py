"""The two data gates of the daily loop: landing (raw files) and features (the Spark job's output).

A gate runs its Great Expectations checkpoints plus a few checks GX cannot express cheaply
(readable files, integral values, the features manifest's row arithmetic), reports all of them
in one summary, and then either publishes the partition or quarantines it and raises
:class:`GateFailed` saying what failed, where the data and the Data Docs are, and what to do.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import config, features, lake, landing, schema
from flywheel.validation import suites
from flywheel.validation._gx import import_gx

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.data_context import FileDataContext

QUARANTINE = "quarantine"
MAX_EXAMPLES = 5
# Failures listed in the exception message; _validation.json has all of them.
MAX_LISTED = 12


class GateFailed(RuntimeError):
    """A partition failed a data gate; it has been quarantined. The message says what to do next."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


# One GX context per process and configuration: loading it parses the yml and the suites.
_CONTEXTS: dict[tuple[Path, Path], FileDataContext] = {}


def gx_home(settings: config.Settings) -> Path:
    return settings.home / "gx"


def get_context(settings: config.Settings | None = None) -> FileDataContext:
    """The committed file context (``settings.gx_dir``) with run state under ``<FLYWHEEL_HOME>/gx``."""
    settings = settings or config.load()
    key = (settings.gx_dir, settings.home)
    if key not in _CONTEXTS:
        gx = import_gx()
        gx_home(settings).mkdir(parents=True, exist_ok=True)
        _CONTEXTS[key] = gx.get_context(
            mode="file",
            context_root_dir=str(settings.gx_dir),
            runtime_environment={suites.GX_HOME_VARIABLE: str(gx_home(settings))},
        )
    return _CONTEXTS[key]


def data_docs_index(settings: config.Settings) -> Path:
    return settings.data_docs_dir / "index.html"


@contextmanager
def _docs_lock(settings: config.Settings) -> Iterator[None]:
    """Serialise checkpoint runs across processes: each rebuilds the shared Data Docs index."""
    path = gx_home(settings) / ".data_docs.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _examples(values: list[Any] | None) -> list[Any]:
    return json.loads(json.dumps(list(values or [])[:MAX_EXAMPLES], default=str))


def _failure(check: str, column: Any = None, table: str | None = None, **details: Any) -> dict[str, Any]:
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
    return _failure(
        conf.type,
        column=kwargs.get("column", kwargs.get("column_list")),
        table=table,
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        # A null check's examples are all null: nothing to show.
        examples=None if conf.type.endswith("not_be_null") else _examples(res.get("partial_unexpected_list")) or None,
        observed_value=json.loads(json.dumps(res.get("observed_value"), default=str)),
        expected=expected or None,
        error="; ".join(m for m in messages if m) or None,
    )


@contextmanager
def batched_data_docs(settings: config.Settings | None = None) -> Iterator[None]:
    """Inside this block, checkpoints store their results but Data Docs are built once, at the end.

    Rebuilding the docs site re-reads every stored result for its index, so one build per
    checkpoint grows with the lake's history; a range run validates many days and builds once.
    The docs are built also when the block fails (the results that were stored get their pages).
    """
    global _DEFERRED_DOCS
    settings = settings or config.load()
    outer, _DEFERRED_DOCS = _DEFERRED_DOCS, []
    try:
        yield
    finally:
        identifiers, _DEFERRED_DOCS = _DEFERRED_DOCS, outer
        if identifiers and outer is not None:
            outer.extend(identifiers)
        elif identifiers:
            _build_data_docs(settings, identifiers)


# Result identifiers waiting for the Data Docs build at the end of batched_data_docs().
_DEFERRED_DOCS: list[Any] | None = None


def _build_data_docs(settings: config.Settings, identifiers: list[Any]) -> None:
    """Render the pages of ``identifiers`` and the index, serialised across processes by a lock."""
    with _docs_lock(settings):
        get_context(settings).build_data_docs(resource_identifiers=identifiers)


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
        with _docs_lock(settings):
            results = dict(
                checkpoint.run(
                    batch_parameters={"dataframe": frame}, expectation_parameters=params, run_id=run_id
                ).run_results
            )
        return _checkpoint_summary(name, results)
    if not checkpoint.validation_definitions:
        raise ValueError(f"checkpoint {name} in {settings.gx_dir} has no validation definitions: nothing would be checked")
    results = {}
    # Under the docs lock: GX writes a result file in place, and a docs build elsewhere reads them all.
    with _docs_lock(settings):
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
    if _DEFERRED_DOCS is not None:
        _DEFERRED_DOCS.extend(results)
    else:
        _build_data_docs(settings, list(results))
    return _checkpoint_summary(name, results)


def _checkpoint_summary(name: str, results: dict[Any, Any]) -> dict[str, Any]:
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


def _number_failures(table: str, frame: pd.DataFrame, columns: dict[str, str]) -> list[dict[str, Any]]:
    """Numeric columns: text that is not a number (the GX type check flags the whole column, this
    names the bad values), and integer columns that arrive as floats (CSV with blanks) must be whole."""
    import pandas as pd

    out = []
    for col, dtype in columns.items():
        if dtype not in ("Int64", "Float64") or col not in frame.columns:
            continue
        raw = frame[col]
        values = raw
        if raw.dtype == object:
            values = pd.to_numeric(raw, errors="coerce")
            bad_text = raw[values.isna() & raw.notna()]
            if len(bad_text):
                out.append(
                    _failure(
                        "flywheel:numeric_values",
                        col,
                        table,
                        unexpected_count=len(bad_text),
                        examples=_examples(bad_text.tolist()),
                    )
                )
        if dtype == "Int64" and values.dtype.kind == "f":
            present = values.dropna()
            fractional = present[present != present.round()]
            if len(fractional):
                out.append(
                    _failure(
                        "flywheel:integral_values",
                        col,
                        table,
                        unexpected_count=len(fractional),
                        examples=_examples(fractional.tolist()),
                    )
                )
    return out


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
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


def _message(summary: dict[str, Any], next_step: str, extra: list[str] | None = None) -> str:
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
        "Quarantined: " + ", ".join(summary["quarantine"]) + " (details in _validation.json there)",
        f"Data Docs: {summary['data_docs']}",
        f"Next: {next_step}",
    ]
    return "\n".join(lines)


def _summary(
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


def _ds_params(day: dt.date) -> dict[str, int]:
    return {"ds_year": day.year, "ds_month": day.month, "ds_day": day.day}


def validate_landing(ds: str | dt.date, settings: config.Settings | None = None) -> dict[str, Any]:
    """Gate the landed day ``landing/flights/ds=D``: publish canonical tables, or quarantine and raise GateFailed."""
    settings = settings or config.load()
    day = lake.parse_ds(ds)
    partition = f"landing/{landing.DATASET}/ds={day}"
    if not lake.exists(landing.ZONE, landing.DATASET, day, settings.lake):
        quarantined = lake.partition_path(QUARANTINE, landing.DATASET, day, settings.lake)
        hint = f"; {quarantined} holds it from a failed earlier run" if quarantined.is_dir() else ""
        raise landing.LandingError(
            f"{partition} does not exist under {settings.lake}{hint}. Rerun the land task for {day} first "
            "(it lands the day again from the source), then this gate."
        )

    frames: dict[str, pd.DataFrame] = {}
    failures: list[dict[str, Any]] = []
    for table in schema.TABLES:
        try:
            frames[table] = landing.read_raw(landing.landed_file(day, table, settings.lake))
        except landing.LandingError as exc:
            failures.append(_failure("flywheel:readable_file", table=table, detail=str(exc)))

    runs = []
    params = {"min_rows": settings.min_rows_per_day, "max_rows": settings.max_rows_per_day, **_ds_params(day)}
    for suite_name, table in (("flights_landing", "flights"), ("weather_landing", "weather")):
        if table in frames:
            run = run_checkpoint(suite_name, frames[table], params, day, settings)
            runs.append(run)
            failures += run["failures"]
            failures += _number_failures(table, frames[table], schema.COLUMNS[table])

    summary = _summary("landing", day, partition, runs, failures, settings)
    summary["rows"] = {t: len(f) for t, f in frames.items() if t in schema.DAILY_TABLES}
    if not failures:
        try:
            path = landing.publish_canonical(day, frames, summary, settings.lake)
        except (landing.LandingError, ValueError, TypeError) as exc:
            # The suites passed but a value does not cast to the canonical type: still bad data.
            failures.append(_failure("flywheel:canonical_cast", detail=f"{type(exc).__name__}: {exc}"))
            summary = {**summary, "success": False, "failures": failures, "checks_failed": len(failures)}
        else:
            summary["canonical"] = str(path / landing.CANONICAL)
            # A quarantined copy from an earlier failed run of this day is stale now.
            summary["cleared_quarantine"] = lake.delete_partition(QUARANTINE, landing.DATASET, day, settings.lake)
            return summary

    dst = lake.move_partition(landing.ZONE, QUARANTINE, landing.DATASET, day, settings.lake)
    summary["quarantine"] = [str(dst)]
    _write_json_atomic(dst / landing.VALIDATION, summary)
    next_step = (
        f"fix the source data for {day} and rerun the day (land, then validate_landing); the rerun replaces {dst}."
    )
    raise GateFailed(_message(summary, next_step), summary)


def _read_candidate(folder: Path) -> tuple[pd.DataFrame | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """The Spark job's Parquet files and manifest; unreadable pieces become failures, not crashes."""
    import pandas as pd
    import pyarrow as pa

    failures: list[dict[str, Any]] = []
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
    frame = None
    if not files:
        failures.append(_failure("flywheel:readable_file", table="features", detail=f"{folder} holds no Parquet file"))
    else:
        try:
            frame = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
        except (OSError, ValueError, pa.ArrowException) as exc:  # all mean "unreadable candidate"
            failures.append(_failure("flywheel:readable_file", table="features", detail=f"{type(exc).__name__}: {exc}"))
    manifest = None
    try:
        manifest = json.loads((folder / features.MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        failures.append(
            _failure(
                "flywheel:manifest",
                table="features",
                detail=f"{folder / features.MANIFEST}: {type(exc).__name__}: {exc}",
            )
        )
    return frame, manifest, failures


def _manifest_failures(
    frame: pd.DataFrame, manifest: dict[str, Any], settings: config.Settings
) -> list[dict[str, Any]]:
    """Rows = landed - cancelled - diverted, as the manifest says, and not too much excluded."""
    keys = ("rows", "landed_rows", "excluded_cancelled", "excluded_diverted")
    missing = [k for k in keys if not isinstance(manifest.get(k), int)]
    if missing:
        return [_failure("flywheel:manifest", table="features", detail=f"_manifest.json lacks integer {missing}")]
    out = []
    landed, cancelled, diverted = manifest["landed_rows"], manifest["excluded_cancelled"], manifest["excluded_diverted"]
    expected = landed - cancelled - diverted
    if len(frame) != expected or manifest["rows"] != len(frame):
        out.append(
            _failure(
                "flywheel:row_count_matches_manifest",
                table="features",
                observed_value=len(frame),
                expected={"rows": expected, "manifest_rows": manifest["rows"]},
                detail=f"landed {landed} - cancelled {cancelled} - diverted {diverted} = {expected}",
            )
        )
    share = (cancelled + diverted) / landed if landed else 1.0
    if share > settings.max_excluded_share:
        out.append(
            _failure(
                "flywheel:excluded_share",
                table="features",
                observed_value=round(share, 4),
                expected={"max_value": settings.max_excluded_share},
                detail=f"{cancelled + diverted} of {landed} landed flights excluded (cancelled or diverted)",
            )
        )
    return out


def validate_features(ds: str | dt.date, settings: config.Settings | None = None) -> dict[str, Any]:
    """Gate the candidate ``features/flights_candidate/ds=D``: publish to ``features/flights`` or quarantine and raise."""
    settings = settings or config.load()
    day = lake.parse_ds(ds)
    partition = f"features/{features.CANDIDATE_DATASET}/ds={day}"
    folder = lake.partition_path("features", features.CANDIDATE_DATASET, day, settings.lake)
    if not folder.is_dir():
        raise lake.LakeError(f"{partition} does not exist under {settings.lake}: run build_features for {day} first")

    frame, manifest, failures = _read_candidate(folder)
    runs = []
    if frame is not None:
        params = {"min_label_rate": settings.min_label_rate, "max_label_rate": settings.max_label_rate}
        run = run_checkpoint("flights_features", frame, params, day, settings)
        runs.append(run)
        failures += run["failures"]
        if manifest is not None:
            failures += _manifest_failures(frame, manifest, settings)

    summary = _summary("features", day, partition, runs, failures, settings)
    summary["rows"] = {"features": None if frame is None else len(frame)}
    if not failures:
        _write_json_atomic(folder / landing.VALIDATION, summary)
        dst = lake.move_partition(
            "features", "features", features.CANDIDATE_DATASET, day, settings.lake, dst_dataset=features.DATASET
        )
        summary["published"] = str(dst)
        summary["cleared_quarantine"] = lake.delete_partition(QUARANTINE, "features", day, settings.lake)
        return summary

    # The gate judges the job's output, not the day's data (the landing gate did that): only the
    # candidate goes to quarantine. The valid landing stays (later days' history reads it, as a
    # sequential run would) and so does an earlier published version of the day's features.
    quarantined = lake.move_partition(
        "features", QUARANTINE, features.CANDIDATE_DATASET, day, settings.lake, dst_dataset="features"
    )
    extra = []
    published = lake.partition_path("features", features.DATASET, day, settings.lake)
    if published.is_dir():
        stale = features.stale_partitions([day], settings.lake).get(day.isoformat())
        extra.append(
            f"The earlier published features/{features.DATASET}/ds={day} stay"
            + (f", built from another landing ({'; '.join(stale)}): rebuild the day." if stale else ".")
        )
    summary["quarantine"] = [str(quarantined)]
    summary["kept_published"] = published.is_dir()
    _write_json_atomic(quarantined / landing.VALIDATION, summary)
    next_step = (
        f"fix the cause (spark_jobs/build_features.py, or a setting such as the label-rate bounds) and rerun "
        f"build_features and validate_features for {day}; the landing of {day} passed its gate and stays, "
        "and the rerun replaces the quarantined candidate."
    )
    raise GateFailed(_message(summary, next_step, extra), summary)
