"""Build the features partition of one day from the canonical landed tables.

    spark-submit spark_jobs/build_features.py --ds 2013-01-05 [--lake PATH] [--output-dataset flights]
    python spark_jobs/build_features.py --ds 2013-01-05

Reads only what the landing gate published (``landing/flights/ds=D/canonical/*.parquet``):
flights, weather, planes and airports of day D, and the canonical flights of the validated
days ``D-28 .. D-1`` for the history features (a missing day there is recorded in the
manifest, not an error). Writes ``features/<output-dataset>/ds=D/`` atomically: one Parquet
file sorted by the flight key, plus ``_manifest.json`` with counts and history coverage.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# spark-submit puts only this script's folder on sys.path; the repo root makes `flywheel` importable.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from flywheel import config, features, lake, landing  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("flywheel.build_features")

ZONE = "features"
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


def input_paths(ds: dt.date, lake_root: Path) -> dict[str, Path]:
    """The canonical tables of day ``ds``; raises FeaturesError naming what is missing."""
    paths = {table: landing.canonical_path(ds, table, lake_root) for table in INPUT_TABLES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FeaturesError(
            f"features ds={ds}: the day is not landed and validated; missing {', '.join(missing)}. "
            f"Run the land and validate_landing tasks for {ds} first "
            f"(the flights_features DAG does both, e.g. `airflow dags test flights_features {ds}`)."
        )
    return paths


def history_window(ds: dt.date, lake_root: Path, days: int = max(features.HISTORY_WINDOWS)) -> History:
    """Split ``ds - days .. ds - 1`` into validated days and missing ones."""
    validated = set(landing.validated_days(lake_root))
    window = [ds - dt.timedelta(days=n) for n in range(days, 0, -1)]
    return History(
        available=tuple(d for d in window if d in validated),
        missing=tuple(d for d in window if d not in validated),
    )


def run(
    ds: str | dt.date,
    settings: config.Settings | None = None,
    output_dataset: str = features.DATASET,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    """Build and publish ``features/<output_dataset>/ds=<ds>/``; returns its manifest plus ``path``."""
    from spark_jobs import transforms
    from spark_jobs.session import get_spark

    started = time.monotonic()
    settings = settings or config.load()
    day = lake.parse_ds(ds)
    root = settings.lake
    paths = input_paths(day, root)
    history = history_window(day, root)
    spark = spark or get_spark("flywheel-build-features", settings)

    tables = {table: spark.read.parquet(str(path)) for table, path in paths.items()}
    if history.available:
        past = spark.read.parquet(*[str(landing.canonical_path(d, "flights", root)) for d in history.available])
    else:
        past = tables["flights"].limit(0)  # same schema, no rows: every history count is 0
    df, counts = transforms.build(tables["flights"], past, tables["weather"], tables["planes"], tables["airports"], day)
    # One file, rows in key order: a rerun writes the same rows in the same order.
    df = df.coalesce(1).sortWithinPartitions(*features.KEY_COLUMNS)

    target = lake.partition_path(ZONE, output_dataset, day, root)
    with lake.staged_partition(ZONE, output_dataset, day, root) as staging:
        df.write.mode("overwrite").parquet(str(staging))
        rows = _written_rows(staging)
        expected = counts["landed_rows"] - counts["excluded_cancelled"] - counts["excluded_diverted"]
        if rows != expected:
            raise FeaturesError(
                f"features ds={day}: wrote {rows} rows but {expected} flights have a label "
                f"({counts}); a join duplicated or lost rows. Nothing was published to {target}."
            )
        manifest: dict[str, Any] = {
            "ds": day.isoformat(),
            "rows": rows,
            **counts,
            "history_days_available": {str(w): history.available_in(w, day) for w in features.HISTORY_WINDOWS},
            "history_days_missing": [d.isoformat() for d in history.missing],
            "columns": list(df.columns),
        }
        (staging / features.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    log.info("features ds=%s: %d rows in %s (%.1f s)", day, rows, target, time.monotonic() - started)
    return {**manifest, "path": str(target)}


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
    parser.add_argument("--ds", required=True, type=lake.parse_ds, help="the day, YYYY-MM-DD")
    parser.add_argument("--lake", type=Path, help="lake root (default: FLYWHEEL_LAKE or FLYWHEEL_HOME/lake)")
    parser.add_argument(
        "--output-dataset",
        default=features.DATASET,
        help=f"dataset under features/ (default {features.DATASET}; the DAG writes {features.CANDIDATE_DATASET})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = config.load()
    if args.lake is not None:
        settings = dataclasses.replace(settings, lake=args.lake.expanduser().resolve())
    try:
        manifest = run(args.ds, settings, args.output_dataset)
    except FeaturesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
