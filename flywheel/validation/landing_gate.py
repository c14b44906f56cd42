"""The landing gate: judge a landed day's raw files, publish its canonical tables or quarantine it.

:func:`validate_landing` gates one day (a daily run, a backfill's run); :func:`validate_landing_days`
gates a range run's days with one GX validation per table over all of them (see
:mod:`flywheel.validation.batch`), with the same verdicts, quarantine and messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import catalog, config, lake, landing, schema
from flywheel.validation import batch, per_day
from flywheel.validation.gates import (
    QUARANTINED,
    GateFailed,
    ds_params,
    examples,
    failure,
    gate_message,
    gate_summary,
    run_checkpoint,
    write_json_atomic,
)

if TYPE_CHECKING:
    import pandas as pd

# Checkpoint (= suite) -> the landed table it validates.
SUITES = (("flights_landing", "flights"), ("weather_landing", "weather"))
# What a day that fails this gate raises (LandingError: the day is not landed, e.g. quarantined by
# an earlier try); anything else is a crash.
ERRORS: tuple[type[Exception], ...] = (GateFailed, landing.LandingError)


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
                    failure(
                        "flywheel:numeric_values",
                        col,
                        table,
                        unexpected_count=len(bad_text),
                        examples=examples(bad_text.tolist()),
                    )
                )
        if dtype == "Int64" and values.dtype.kind == "f":
            present = values.dropna()
            fractional = present[present != present.round()]
            if len(fractional):
                out.append(
                    failure(
                        "flywheel:integral_values",
                        col,
                        table,
                        unexpected_count=len(fractional),
                        examples=examples(fractional.tolist()),
                    )
                )
    return out


def _params(day: dt.date, settings: config.Settings) -> dict[str, Any]:
    return {"min_rows": settings.min_rows_per_day, "max_rows": settings.max_rows_per_day, **ds_params(day)}


def _partition(day: dt.date) -> str:
    return catalog.LANDING_FLIGHTS.partition(day)


def _publish(
    day: dt.date,
    frames: dict[str, pd.DataFrame],
    summary: dict[str, Any],
    settings: config.Settings,
    converted: dict[str, Any] | None = None,
) -> None:
    """Add the canonical tables (and the summary) to the landed day; raises if a value does not cast."""
    path = landing.publish_canonical(day, frames, summary, settings.lake, converted)
    summary["canonical"] = str(path / landing.CANONICAL)
    # A quarantined copy from an earlier failed run of this day is stale now.
    summary["cleared_quarantine"] = catalog.QUARANTINE_LANDING.delete(day, settings.lake)


# A value that does not cast to the canonical type: the suites passed, but it is still bad data.
CAST_ERRORS = (landing.LandingError, ValueError, TypeError)


def validate_landing(ds: str | dt.date, settings: config.Settings | None = None) -> dict[str, Any]:
    """Gate the landed day ``landing/flights/ds=D``: publish canonical tables, or quarantine and raise GateFailed."""
    settings = settings or config.load()
    day = lake.parse_ds(ds)
    partition = _partition(day)
    if not catalog.LANDING_FLIGHTS.exists(day, settings.lake):
        quarantined = catalog.QUARANTINE_LANDING.path(day, settings.lake)
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
            failures.append(failure("flywheel:readable_file", table=table, detail=str(exc)))

    runs = []
    params = _params(day, settings)
    for suite_name, table in SUITES:
        if table in frames:
            run = run_checkpoint(suite_name, frames[table], params, day, settings)
            runs.append(run)
            failures += run["failures"]
            failures += _number_failures(table, frames[table], schema.COLUMNS[table])

    summary = gate_summary(catalog.LANDING_FLIGHTS.gate, day, partition, runs, failures, settings)
    summary["rows"] = {t: len(f) for t, f in frames.items() if t in schema.DAILY_TABLES}
    if not failures:
        try:
            _publish(day, frames, summary, settings)
        except CAST_ERRORS as exc:
            failures.append(failure("flywheel:canonical_cast", detail=f"{type(exc).__name__}: {exc}"))
            summary = {**summary, "success": False, "failures": failures, "checks_failed": len(failures)}
        else:
            return summary

    dst = catalog.LANDING_FLIGHTS.move_to(catalog.QUARANTINE_LANDING, day, settings.lake)
    summary[QUARANTINED] = [str(dst)]
    write_json_atomic(dst / landing.VALIDATION, summary)
    next_step = (
        f"fix the source data for {day} and rerun the day (land, then validate_landing); the rerun replaces {dst}."
    )
    raise GateFailed(gate_message(summary, next_step), summary)


class _References:
    """The reference tables of a range's days (a copy lands with every day), read and converted to
    canonical Parquet once per distinct landed file (by the SHA-256 of its bytes)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.frames: dict[tuple[str, str], pd.DataFrame] = {}
        self.converted: dict[tuple[str, str], Path | None] = {}

    def read(self, path: Path) -> tuple[tuple[str, str], pd.DataFrame]:
        with path.open("rb") as fh:
            key = (path.name, hashlib.file_digest(fh, "sha256").hexdigest())
        if key not in self.frames:
            self.frames[key] = landing.read_raw(path)
        return key, self.frames[key]

    def canonical(self, key: tuple[str, str], table: str) -> Path | None:
        """The table's canonical Parquet; ``None`` when a value does not cast (the one-day gate names it)."""
        if key not in self.converted:
            target = self.scratch / f"{len(self.converted)}-{table}.parquet"
            try:
                landing.to_canonical(self.frames[key], table).to_parquet(target, index=False)
            except CAST_ERRORS:
                self.converted[key] = None
            else:
                self.converted[key] = target
        return self.converted[key]


def _read_days(
    days: list[dt.date], references: _References, settings: config.Settings
) -> tuple[dict[dt.date, dict[str, pd.DataFrame]], dict[dt.date, dict[str, tuple[str, str]]], list[dt.date]]:
    """Every table of each landed day, the key of each of its reference tables, and the days that
    cannot all be read or are not landed (the one-day gate reports those)."""
    frames: dict[dt.date, dict[str, pd.DataFrame]] = {}
    keys: dict[dt.date, dict[str, tuple[str, str]]] = {}
    unreadable: list[dt.date] = []
    for day in days:
        try:
            tables = {t: landing.read_raw(landing.landed_file(day, t, settings.lake)) for t in schema.DAILY_TABLES}
            keys[day] = {}
            for table in schema.REFERENCE_TABLES:
                keys[day][table], tables[table] = references.read(landing.landed_file(day, table, settings.lake))
        except landing.LandingError:
            unreadable.append(day)
        else:
            frames[day] = tables
    return frames, keys, unreadable


def validate_landing_days(days: Iterable[str | dt.date], settings: config.Settings | None = None) -> per_day.DaysResult:
    """Gate the landed ``days`` as :func:`validate_landing` gates each: the same days pass, the same
    are quarantined with the same message. Two days or more: one GX validation per table over all of
    them and per-day checks in pandas (:mod:`flywheel.validation.batch`); a day these do not clear
    goes through :func:`validate_landing` alone."""
    settings = settings or config.load()
    todo = sorted({lake.parse_ds(d) for d in days})
    result = per_day.DaysResult()
    if len(todo) < 2:
        return per_day.one_by_one(todo, validate_landing, ERRORS, settings, result)
    try:
        plans = [batch.plan(name, settings) for name, _ in SUITES]
    except batch.NotBatchable as exc:
        print(f"landing gate: {exc}: the {len(todo)} days are gated one by one")
        return per_day.one_by_one(todo, validate_landing, ERRORS, settings, result)

    with catalog.LANDING_FLIGHTS.scratch(settings.lake) as scratch:
        scratch.mkdir(parents=True)
        references = _References(scratch)
        frames, keys, alone = _read_days(todo, references, settings)
        cleared = {day: [] for day in frames}  # day -> (batch run, its per-day checks) of each suite
        for suite in plans:
            tables = {d: f[suite.table] for d, f in frames.items() if d in cleared}
            passed = batch.validate_batches(suite, tables, settings)
            for day in list(cleared):
                if day not in passed:
                    del cleared[day]
                    alone.append(day)
                else:
                    checks = per_day.per_day_checks(suite, tables[day], _params(day, settings))
                    cleared[day].append((passed[day], checks))
        ready = [day for day, runs in sorted(cleared.items()) if _clean(day, frames[day], runs)]
        alone += [day for day in cleared if day not in ready]
        daily = _convert_daily(frames, ready)
        for day in ready:
            converted = {**{t: references.canonical(key, t) for t, key in keys[day].items()}, **daily[day]}
            if not _publish_cleared(day, frames[day], converted, cleared[day], settings, result):
                alone.append(day)
    return per_day.one_by_one(sorted(alone), validate_landing, ERRORS, settings, result)


def _clean(
    day: dt.date, tables: dict[str, pd.DataFrame], runs: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> bool:
    """The day's per-day checks and number checks pass (else the one-day gate reports what failed)."""
    failed = [c for _, checks in runs for c in checks if not c["success"]]
    failed += [f for t in schema.DAILY_TABLES for f in _number_failures(t, tables[t], schema.COLUMNS[t])]
    if failed:
        print(f"ds={day}: {failed[0]['check']} on {failed[0]['table']} fails on the day: it is gated alone")
    return not failed


def _convert_daily(
    frames: dict[dt.date, dict[str, pd.DataFrame]], days: list[dt.date]
) -> dict[dt.date, dict[str, pd.DataFrame]]:
    """The daily tables of ``days`` in canonical types, converted together per group of days whose
    frames have the same dtypes: a conversion goes value by value, so the slice of the converted
    concatenation is the day's own conversion (at a fraction of the cost of 365 small ones). A group
    that does not convert is left out: its days convert (and fail, naming the value) on their own."""
    import pandas as pd

    out: dict[dt.date, dict[str, pd.DataFrame]] = {day: {} for day in days}
    for table in schema.DAILY_TABLES:
        groups: dict[tuple[tuple[str, str], ...], list[dt.date]] = {}
        for day in days:
            groups.setdefault(tuple(frames[day][table].dtypes.astype(str).items()), []).append(day)
        for group in groups.values():
            parts = [frames[day][table] for day in group]
            try:
                converted = landing.to_canonical(pd.concat(parts, ignore_index=True), table)
            except CAST_ERRORS:
                continue
            start = 0
            for day, part in zip(group, parts, strict=True):
                out[day][table] = converted.iloc[start : start + len(part)].reset_index(drop=True)
                start += len(part)
    return out


def _publish_cleared(
    day: dt.date,
    tables: dict[str, pd.DataFrame],
    converted: dict[str, Any],
    runs: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    settings: config.Settings,
    result: per_day.DaysResult,
) -> bool:
    """Publish a day that its batches and per-day checks cleared; ``False`` when a value does not cast
    (the day is for the one-day gate, which names it)."""
    if any(value is None for value in converted.values()):
        return False
    summary = per_day.day_summary(catalog.LANDING_FLIGHTS.gate, day, _partition(day), runs, settings)
    summary["rows"] = {t: len(tables[t]) for t in schema.DAILY_TABLES}
    try:
        _publish(day, tables, summary, settings, converted)
    except CAST_ERRORS:
        return False
    result.passed[day.isoformat()] = summary
    result.batched.append(day.isoformat())
    return True
