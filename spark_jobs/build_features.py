"""Build the features partitions of one day, or of a range of days in one Spark job.

    spark-submit spark_jobs/build_features.py --ds 2013-01-05 [--through 2013-01-31] [--lake PATH] [--output-dataset flights]
    python spark_jobs/build_features.py --ds 2013-01-05

Reads only what the landing gate published (``landing/flights/ds=D/canonical/*.parquet``):
flights, weather, planes and airports of each day D, and the canonical flights of the validated
days ``D-28 .. D-1`` for the history features (a missing day there is recorded in the
manifest, not an error). Writes ``features/<output-dataset>/ds=D/`` atomically per day: one
Parquet file sorted by the flight key, plus ``_manifest.json`` with counts and history coverage.
A range gives every day exactly the rows a run of that day alone gives (pinned by a test); it
costs one job instead of one per day.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

# spark-submit puts only this script's folder on sys.path; the repo root makes `flywheel` importable.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from flywheel import catalog, config, features, lake, landing  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("flywheel.build_features")

INPUT_TABLES = ("flights", "weather", "planes", "airports")


class FeaturesError(RuntimeError):
    """The inputs of a day are missing, or the built partition breaks the features contract."""


@dataclasses.dataclass(frozen=True)
class History:
    """Which days of the history window before ``ds`` are validated (usable) and which are not."""

    available: tuple[dt.date, ...]
    missing: tuple[dt.date, ...]

    def available_in(self, window: int, ds: dt.date) -> int:
        return sum(1 for d in self.available if d >= ds - dt.timedelta(days=window))


def input_paths(ds: dt.date, lake_root: Path, versions: dict[dt.date, str | None] | None = None) -> dict[str, Path]:
    """The canonical tables of day ``ds`` (in its pinned version, if given); raises FeaturesError naming what is missing."""
    pin = (versions or {}).get(ds)
    paths = {table: features.pinned(landing.canonical_path(ds, table, lake_root), pin) for table in INPUT_TABLES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FeaturesError(
            f"features ds={ds}: the day is not landed and validated; missing {', '.join(missing)}. "
            f"Run the land and validate_landing tasks for {ds} first "
            f"(the flights_features DAG does both, e.g. `airflow dags test flights_features {ds}`)."
        )
    return paths


def history_window(
    ds: dt.date, lake_root: Path, days: int = max(features.HISTORY_WINDOWS), validated: set[dt.date] | None = None
) -> History:
    """Split ``ds - days .. ds - 1`` into validated days and missing ones."""
    validated = set(landing.validated_days(lake_root)) if validated is None else validated
    window = [ds - dt.timedelta(days=n) for n in range(days, 0, -1)]
    return History(
        available=tuple(d for d in window if d in validated),
        missing=tuple(d for d in window if d not in validated),
    )


def run(
    ds: str | dt.date,
    settings: config.Settings | None = None,
    output_dataset: str = catalog.FEATURES.dataset,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    """Build and publish ``features/<output_dataset>/ds=<ds>/``; returns its manifest plus ``path``."""
    return run_days([lake.parse_ds(ds)], settings, output_dataset, spark)[0]


def run_days(
    days: list[dt.date],
    settings: config.Settings | None = None,
    output_dataset: str = catalog.FEATURES.dataset,
    spark: SparkSession | None = None,
) -> list[dict[str, Any]]:
    """Build and publish the partitions of ``days`` in one Spark job; returns their manifests
    (plus ``path``) in date order. Nothing is published unless every day is landed and validated,
    and no input day changed while the job read it."""
    started = time.monotonic()
    settings = settings or config.load()
    days = sorted({lake.parse_ds(d) for d in days})
    if not days:
        raise FeaturesError("features: no day to build")
    root = settings.lake
    output = catalog.features_output(output_dataset)
    for day in days:
        input_paths(day, root)  # a day not landed and validated: a clear error before anything is touched
    # A killed earlier job's scratch (its days' staging and pointer leftovers go at each day's publish).
    output.sweep(root, partitions=False)
    with ExitStack() as held:
        # One writer per day: a second job building one of these days fails now, naming this one.
        for day in days:
            held.enter_context(output.lock(day, root))
        return _build(days, settings, output, spark, started)


def _build(
    days: list[dt.date], settings: config.Settings, output: catalog.Dataset, spark: SparkSession | None, started: float
) -> list[dict[str, Any]]:
    from pyspark.sql import functions as F

    from spark_jobs import transforms
    from spark_jobs.session import get_spark

    root = settings.lake
    validated = set(landing.validated_days(root))
    histories = {day: history_window(day, root, validated=validated) for day in days}
    past_days = sorted({d for h in histories.values() for d in h.available})
    # The landing versions this job reads, pinned: Spark reads those version folders (not the
    # pointers, which a rerun of a day may swap meanwhile), and each day's manifest records them.
    inputs = features.landing_versions(sorted(set(days) | set(past_days)), root)
    paths = {day: input_paths(day, root, inputs) for day in days}
    spark = spark or get_spark("flywheel-build-features", settings)

    def read(table: str) -> Any:
        # One scan per table; each row keeps the day of the partition it was read from.
        frame = spark.read.parquet(*[str(paths[day][table]) for day in days])
        return frame.withColumn("ds", F.regexp_extract(F.col("_metadata.file_path"), r"/ds=(\d{4}-\d{2}-\d{2})/", 1))

    tables = {table: read(table) for table in INPUT_TABLES}
    if past_days:
        past = spark.read.parquet(
            *[str(features.pinned(landing.canonical_path(d, "flights", root), inputs[d])) for d in past_days]
        )
    else:
        past = tables["flights"].drop("ds").limit(0)  # same schema, no rows: every history count is 0
    df, counts = transforms.build_days(tables["flights"], past, tables["weather"], tables["planes"], tables["airports"])
    missing_days = [d.isoformat() for d in days if d.isoformat() not in counts]
    if missing_days:
        raise FeaturesError(
            f"features: the landed flights of {', '.join(missing_days)} have no rows; rerun their landing"
        )
    # One file per day, rows in key order: a rerun writes the same rows in the same order.
    df = df.withColumn("_day", F.col("ds")).repartition("_day").sortWithinPartitions("_day", *features.KEY_COLUMNS)

    manifests = []
    with output.scratch(root) as scratch:
        df.write.partitionBy("_day").parquet(str(scratch))
        written = {day: scratch / f"_day={day.isoformat()}" for day in days}
        # Every day's row count is checked before any day is published.
        for day in days:
            rows = _written_rows(written[day]) if written[day].is_dir() else 0
            day_counts = counts[day.isoformat()]
            expected = day_counts["landed_rows"] - day_counts["excluded_cancelled"] - day_counts["excluded_diverted"]
            if rows != expected:
                raise FeaturesError(
                    f"features ds={day}: wrote {rows} rows but {expected} flights have a label ({day_counts}); "
                    f"a join duplicated or lost rows. Nothing was published to "
                    f"{output.dir(root)}."
                )
            history = histories[day]
            manifests.append(
                {
                    "ds": day.isoformat(),
                    "rows": rows,
                    **day_counts,
                    "history_days_available": {str(w): history.available_in(w, day) for w in features.HISTORY_WINDOWS},
                    "history_days_missing": [d.isoformat() for d in history.missing],
                    "columns": list(features.COLUMNS),
                    "inputs": {d.isoformat(): inputs[d] for d in (*history.available, day)},
                }
            )
        changed = features.changed_inputs(inputs, root)
        if changed:  # a rerun of an input day while this job read it: publishing would mix versions
            raise FeaturesError(
                "features: landed input days changed while this job read them (" + "; ".join(changed) + "). "
                "Nothing was published; the task's retry rebuilds from the new versions."
            )
        for day, manifest in zip(days, manifests, strict=True):
            with output.staged(day, root) as staging:
                if manifest["rows"]:
                    for file in sorted(written[day].glob("*.parquet")):
                        file.rename(staging / file.name)
                else:  # no labelled flight: an empty file with the contract's schema
                    df.where(F.lit(False)).drop("_day").coalesce(1).write.mode("overwrite").parquet(str(staging))
                    _written_rows(staging)
                (staging / features.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            manifest["path"] = str(output.path(day, root))
            log.info("features ds=%s: %d rows in %s", day, manifest["rows"], manifest["path"])
    log.info("features: %d day(s) %s..%s in %.1f s", len(days), days[0], days[-1], time.monotonic() - started)
    return manifests


def _written_rows(folder: Path) -> int:
    """Rows of the Parquet files Spark wrote into ``folder``, from their footers; drops checksum sidecars.

    Counting what was written (not what was planned) catches a join that multiplied rows. Spark
    itself would skip the folder: its name starts with a dot, which Spark treats as hidden.
    """
    import pyarrow.parquet as pq

    for crc in folder.glob(".*.crc"):  # Hadoop's local checksums; other readers only trip over them
        crc.unlink()
    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(folder.glob("*.parquet")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark_jobs/build_features.py", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ds", type=lake.parse_ds, help="the day (first day of a range), YYYY-MM-DD")
    which.add_argument("--days", help="comma-separated days, YYYY-MM-DD,YYYY-MM-DD,... (what a DAG run passes)")
    parser.add_argument("--through", type=lake.parse_ds, help="last day of a range, YYYY-MM-DD (default: --ds)")
    parser.add_argument("--lake", type=Path, help="lake root (default: FLYWHEEL_LAKE or FLYWHEEL_HOME/lake)")
    parser.add_argument(
        "--output-dataset",
        default=catalog.FEATURES.dataset,
        help=f"dataset under features/ (default {catalog.FEATURES.dataset}; the DAG writes {catalog.FEATURES_CANDIDATE.dataset})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = config.load()
    if args.lake is not None:
        settings = dataclasses.replace(settings, lake=args.lake.expanduser().resolve())
    if args.days is not None:
        if args.through is not None:
            parser.error("--through goes with --ds, not --days")
        try:
            days = [lake.parse_ds(d.strip()) for d in args.days.split(",") if d.strip()]
        except lake.LakeError as exc:
            parser.error(f"--days: {exc}")
    else:
        if args.through is not None and args.through < args.ds:
            parser.error(f"--through {args.through} is before --ds {args.ds}")
        days = lake.days_between(args.ds, args.through or args.ds)
    try:
        manifests = run_days(days, settings, args.output_dataset)
    except FeaturesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(manifests[0] if len(manifests) == 1 else manifests, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
