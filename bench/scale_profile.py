"""Where the Spark features job's time goes, on one scaled size (a diagnostic for bench/scale.py).

    python bench/scale_profile.py [--size 1] [--data DIR] [--driver-memory 8g]

In one local[2] session (Flywheel's local configuration), each part of ``transforms.build_days``
run alone and written to Spark's ``noop`` sink (computed, not stored):

* ``session``: starting the JVM and the session;
* ``one day``: ``build_days`` of the last day with its 28 days of history (the fixed cost of a job);
* ``build_days``: the whole year, as in bench/scale.py but without the Parquet write;
* ``joins only``: label, calendar, weather, planes and airports (per-day reference copies);
* ``history only``: ``history_features`` of every labelled flight (daily totals per entity, then
  range windows over each entity's days, the way the DuckDB baseline does it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
for _p in (str(BENCH.parent), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import scale_data  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--data", type=Path, default=scale_data.default_out())
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--seed", type=int, default=scale_data.DEFAULT_SEED)
    args = parser.parse_args(argv)

    from pyspark.sql import functions as F
    from scale import load, spark_session

    from spark_jobs import transforms

    inputs, meta = scale_data.ensure(args.data, args.size, args.seed)
    timings: list[tuple[str, float, str]] = []

    def timed(name: str, run: Any) -> Any:
        before = load()
        started = time.perf_counter()
        value = run()
        timings.append((name, time.perf_counter() - started, before))
        print(f"{name}: {timings[-1][1]:.1f} s (load {before})", flush=True)
        return value

    spark = timed("session", lambda: spark_session(args.data / "out" / "profile_home", args.driver_memory, "local[2]"))
    flights = spark.read.parquet(str(inputs / "flights.parquet"))
    weather = spark.read.parquet(str(inputs / "weather.parquet"))
    days = spark.createDataFrame([(r["ds"],) for r in flights.select("ds").distinct().collect()], "ds string")
    planes = spark.read.parquet(str(inputs / "planes.parquet")).crossJoin(days)
    airports = spark.read.parquet(str(inputs / "airports.parquet")).crossJoin(days)
    past = flights.drop("ds")

    def noop(df: Any) -> None:
        df.write.format("noop").mode("overwrite").save()

    last = meta["last_day"]
    first_past = (dt.date.fromisoformat(last) - dt.timedelta(days=28)).isoformat()

    def one_day() -> None:
        day = [t.where(F.col("ds") == last) for t in (flights, weather, planes, airports)]
        window = flights.where((F.col("ds") >= first_past) & (F.col("ds") < last)).drop("ds")
        noop(transforms.build_days(day[0], window, *day[1:])[0])

    timed("one day (fixed cost of a job)", one_day)
    year = transforms.build_days(flights, past, weather, planes, airports)[0]
    plan = year._jdf.queryExecution().executedPlan().toString()  # the plan before AQE re-plans it
    print(
        "build_days plan: "
        + ", ".join(f"{plan.count(op)} x {op}" for op in ("BroadcastNestedLoopJoin", "FileScan parquet", "Window", "Exchange")),
        flush=True,
    )
    timed("build_days, whole year", lambda: noop(year))

    def joins_only() -> None:
        labelled, _ = transforms.label_and_exclusions(flights, by=["ds"])
        df = transforms.calendar_features(transforms.with_route(labelled))
        df = transforms.join_airports(transforms.join_planes(transforms.join_weather(df, weather), planes), airports)
        noop(df)

    timed("joins only (label, calendar, weather, planes, airports)", joins_only)
    labelled = flights.where(F.col("arr_delay").isNotNull())
    timed("history only (transforms.history_features)", lambda: noop(transforms.history_features(labelled, past)))
    spark.stop()
    rows = meta["labelled"]
    print(f"\nSpark parts, {args.size}x ({meta['flights']:,} flights, {rows:,} labelled), local[2], "
          f"spark.driver.memory={args.driver_memory}, {os.cpu_count()} cores:")
    print("| part | s | load before |\n|---|---|---|")
    for name, seconds, before in timings:
        print(f"| {name} | {seconds:.1f} | {before} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
