"""The features gate: judge the Spark job's candidate of a day, publish it to features/ or quarantine it.

:func:`validate_features` gates one day's candidate; :func:`validate_features_days` gates a range
run's candidates with one GX validation over all of them (see :mod:`flywheel.validation.batch`),
with the same verdicts, quarantine and messages. The gate judges the job's output, not the day's
data: on failure only the candidate goes to quarantine.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import catalog, config, features, lake, landing
from flywheel.validation import batch, per_day, suites
from flywheel.validation.gates import (
    QUARANTINED,
    GateFailed,
    failure,
    gate_message,
    gate_summary,
    run_checkpoint,
    write_json_atomic,
)

if TYPE_CHECKING:
    import pandas as pd

SUITE = "flights_features"
# The GX dataframe asset the suite validates: failures and row counts are filed under it.
TABLE = suites.SUITE_ASSETS[SUITE]
# What a day that fails this gate raises (LakeError: no candidate, e.g. published by an earlier try);
# anything else is a crash.
ERRORS: tuple[type[Exception], ...] = (GateFailed, lake.LakeError)


def _params(settings: config.Settings) -> dict[str, Any]:
    return {"min_label_rate": settings.min_label_rate, "max_label_rate": settings.max_label_rate}


def _partition(day: dt.date) -> str:
    return catalog.FEATURES_CANDIDATE.partition(day)


def _candidate(day: dt.date, settings: config.Settings) -> Path:
    return catalog.FEATURES_CANDIDATE.path(day, settings.lake)


def _publish(day: dt.date, folder: Path, summary: dict[str, Any], settings: config.Settings) -> None:
    """Move the candidate, with the gate's summary, to ``features/flights/ds=D``."""
    write_json_atomic(folder / landing.VALIDATION, summary)
    dst = catalog.FEATURES_CANDIDATE.move_to(catalog.FEATURES, day, settings.lake)
    summary["published"] = str(dst)
    summary["cleared_quarantine"] = catalog.QUARANTINE_FEATURES.delete(day, settings.lake)


def _read_candidate(folder: Path) -> tuple[pd.DataFrame | None, dict[str, Any] | None, list[dict[str, Any]]]:
    """The Spark job's Parquet files and manifest; unreadable pieces become failures, not crashes."""
    import pandas as pd
    import pyarrow as pa

    failures: list[dict[str, Any]] = []
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
    frame = None
    if not files:
        failures.append(failure("flywheel:readable_file", table=TABLE, detail=f"{folder} holds no Parquet file"))
    else:
        try:
            frame = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
        except (OSError, ValueError, pa.ArrowException) as exc:  # all mean "unreadable candidate"
            failures.append(failure("flywheel:readable_file", table=TABLE, detail=f"{type(exc).__name__}: {exc}"))
    manifest = None
    try:
        manifest = json.loads((folder / features.MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        failures.append(
            failure(
                "flywheel:manifest",
                table=TABLE,
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
        return [failure("flywheel:manifest", table=TABLE, detail=f"_manifest.json lacks integer {missing}")]
    out = []
    landed, cancelled, diverted = manifest["landed_rows"], manifest["excluded_cancelled"], manifest["excluded_diverted"]
    expected = landed - cancelled - diverted
    if len(frame) != expected or manifest["rows"] != len(frame):
        out.append(
            failure(
                "flywheel:row_count_matches_manifest",
                table=TABLE,
                observed_value=len(frame),
                expected={"rows": expected, "manifest_rows": manifest["rows"]},
                detail=f"landed {landed} - cancelled {cancelled} - diverted {diverted} = {expected}",
            )
        )
    share = (cancelled + diverted) / landed if landed else 1.0
    if share > settings.max_excluded_share:
        out.append(
            failure(
                "flywheel:excluded_share",
                table=TABLE,
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
    partition = _partition(day)
    folder = _candidate(day, settings)
    if not folder.is_dir():
        raise lake.LakeError(f"{partition} does not exist under {settings.lake}: run build_features for {day} first")

    frame, manifest, failures = _read_candidate(folder)
    runs = []
    if frame is not None:
        run = run_checkpoint(SUITE, frame, _params(settings), day, settings)
        runs.append(run)
        failures += run["failures"]
        if manifest is not None:
            failures += _manifest_failures(frame, manifest, settings)

    summary = gate_summary(catalog.FEATURES.gate, day, partition, runs, failures, settings)
    summary["rows"] = {TABLE: None if frame is None else len(frame)}
    if not failures:
        _publish(day, folder, summary, settings)
        return summary

    # The gate judges the job's output, not the day's data (the landing gate did that): only the
    # candidate goes to quarantine. The valid landing stays (later days' history reads it, as a
    # sequential run would) and so does an earlier published version of the day's features.
    quarantined = catalog.FEATURES_CANDIDATE.move_to(catalog.QUARANTINE_FEATURES, day, settings.lake)
    extra = []
    published = catalog.FEATURES.path(day, settings.lake)
    if published.is_dir():
        stale = features.stale_partitions([day], settings.lake).get(day.isoformat())
        extra.append(
            f"The earlier published {catalog.FEATURES.partition(day)} stay"
            + (f", built from another landing ({'; '.join(stale)}): rebuild the day." if stale else ".")
        )
    summary[QUARANTINED] = [str(quarantined)]
    summary["kept_published"] = published.is_dir()
    write_json_atomic(quarantined / landing.VALIDATION, summary)
    next_step = (
        f"fix the cause (spark_jobs/build_features.py, or a setting such as the label-rate bounds) and rerun "
        f"build_features and validate_features for {day}; the landing of {day} passed its gate and stays, "
        "and the rerun replaces the quarantined candidate."
    )
    raise GateFailed(gate_message(summary, next_step, extra), summary)


def validate_features_days(
    days: Iterable[str | dt.date], settings: config.Settings | None = None
) -> per_day.DaysResult:
    """Gate the candidates of ``days`` as :func:`validate_features` gates each: the same days are
    published, the same candidates quarantined with the same message. Two days or more: one GX
    validation over all of them and per-day checks in pandas (:mod:`flywheel.validation.batch`); a
    day these do not clear goes through :func:`validate_features` alone."""
    settings = settings or config.load()
    todo = sorted({lake.parse_ds(d) for d in days})
    result = per_day.DaysResult()
    if len(todo) < 2:
        return per_day.one_by_one(todo, validate_features, ERRORS, settings, result)
    try:
        suite = batch.plan(SUITE, settings)
    except batch.NotBatchable as exc:
        print(f"features gate: {exc}: the {len(todo)} days are gated one by one")
        return per_day.one_by_one(todo, validate_features, ERRORS, settings, result)

    frames: dict[dt.date, pd.DataFrame] = {}
    alone: list[dt.date] = []
    for day in todo:
        folder = _candidate(day, settings)
        frame, manifest, failures = _read_candidate(folder) if folder.is_dir() else (None, None, [])
        if frame is None or manifest is None or failures or _manifest_failures(frame, manifest, settings):
            alone.append(day)  # missing, unreadable or off the manifest's arithmetic: the one-day gate says so
        else:
            frames[day] = frame
    passed = batch.validate_batches(suite, frames, settings)
    alone += [day for day in frames if day not in passed]
    for day, run in sorted(passed.items()):
        checks = per_day.per_day_checks(suite, frames[day], _params(settings))
        if not all(c["success"] for c in checks):
            print(
                f"ds={day}: {next(c['check'] for c in checks if not c['success'])} fails on the day: it is gated alone"
            )
            alone.append(day)
            continue
        summary = per_day.day_summary(catalog.FEATURES.gate, day, _partition(day), [(run, checks)], settings)
        summary["rows"] = {TABLE: len(frames[day])}
        _publish(day, _candidate(day, settings), summary, settings)
        result.passed[day.isoformat()] = summary
        result.batched.append(day.isoformat())
    return per_day.one_by_one(sorted(alone), validate_features, ERRORS, settings, result)
