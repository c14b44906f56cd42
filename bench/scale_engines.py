"""The features of a whole year of ``bench/scale_data.py`` inputs, three ways, in one job each.

Every engine builds the features (all of :data:`flywheel.features.COLUMNS`) of every day in
``flights.parquet``, with the same file as the history (what ``run_days`` does for a range of
validated days), and writes Parquet:

* :func:`spark_features`: Flywheel's own code, ``spark_jobs.transforms.build_days``, on
  ``spark.read.parquet`` of the inputs. ``run_days`` reads the reference tables from every day's
  partition, so ``planes`` and ``airports`` are given one copy per day here too (a cross join with
  the days), as ``build_days`` expects (its plane and airport joins are per ``ds``).
* :func:`pandas_features` and :func:`duckdb_features`: the same definitions written again: the
  label ``arr_delay >= 15``; cancelled and diverted flights (no ``arr_delay``) neither built nor
  history; the origin's weather of the scheduled hour (duplicate hours averaged); the plane and
  destination airport facts (duplicates: smallest values first); and the history as **daily
  aggregates per entity and range windows** over them: count, delay rate and mean arrival delay of
  the labelled flights of days ``[D - w, D - 1]``. The reference tables are joined once (the
  per-day copies are identical). Delays are whole minutes, so every window sum is exact and the
  three engines agree to the last bit on sums (means may differ in the last place).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import features, schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from pyspark.sql import SparkSession

ENGINES = ("spark", "pandas", "duckdb")
FLIGHT_COLUMNS = (
    "ds", "year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest",
    "arr_delay", "sched_dep_time", "sched_arr_time", "distance", "hour",
)  # fmt: skip


def _output_types() -> dict[str, str]:
    # transforms.OUTPUT_TYPES without importing pyspark (the baselines' processes never load it).
    types = {c: "double" for c in features.COLUMNS}
    types.update({c: "string" for c in ("ds", "carrier", "tailnum", "origin", "dest", "route")})
    ints = ("year", "month", "day", "flight", schema.LABEL, *features.CALENDAR_FEATURES, *features.PLANE_FEATURES)
    types.update({c: "int" for c in ints})
    types.update({c: "long" for c in features.HISTORY_FEATURES if "_flights_" in c})
    return types


OUTPUT_TYPES = _output_types()


# --- Spark: Flywheel's transforms -----------------------------------------------------------------


def spark_features(spark: SparkSession, inputs: Path, out: Path) -> dict[str, Any]:
    """``transforms.build_days`` over every day of ``inputs``, written to ``out`` (a Parquet folder)."""
    from spark_jobs import transforms

    started = time.perf_counter()
    flights = spark.read.parquet(str(inputs / "flights.parquet"))
    weather = spark.read.parquet(str(inputs / "weather.parquet"))
    days = spark.createDataFrame([(r["ds"],) for r in flights.select("ds").distinct().collect()], "ds string")
    planes = spark.read.parquet(str(inputs / "planes.parquet")).crossJoin(days)
    airports = spark.read.parquet(str(inputs / "airports.parquet")).crossJoin(days)
    df, counts = transforms.build_days(flights, flights.drop("ds"), weather, planes, airports)
    df.write.mode("overwrite").parquet(str(out))
    seconds = time.perf_counter() - started
    expected = sum(c["landed_rows"] - c["excluded_cancelled"] - c["excluded_diverted"] for c in counts.values())
    rows = _parquet_rows(out)
    if rows != expected:
        raise RuntimeError(f"spark wrote {rows} rows to {out}, expected {expected} labelled flights")
    return {"rows": rows, "seconds": seconds}


# --- pandas -------------------------------------------------------------------------------------


def _concat_ws(a: pd.Categorical, b: pd.Categorical) -> pd.Categorical:
    """Spark's ``concat_ws('-', a, b)`` on two categoricals (a null part is skipped), as a categorical."""
    import numpy as np
    import pandas as pd

    width = len(b.categories) + 1
    pairs = (a.codes.astype(np.int64) + 1) * width + (b.codes.astype(np.int64) + 1)
    uniq, inverse = np.unique(pairs, return_inverse=True)
    labels = [
        "-".join(str(c.categories[i]) for c, i in ((a, u // width - 1), (b, u % width - 1)) if i >= 0) for u in uniq
    ]
    codes, categories = pd.factorize(pd.Index(labels, dtype=object))
    return pd.Categorical.from_codes(codes[inverse], categories)


def _by_category(values: pd.Categorical, mapped: np.ndarray, missing: float = float("nan")) -> np.ndarray:
    """``mapped[i]`` (one value per category) for every row; ``missing`` for null rows."""
    import numpy as np

    return np.where(values.codes >= 0, mapped[values.codes], missing)


def _clock_minutes(hhmm: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.mod(np.trunc(hhmm / 100) * 60 + np.mod(hhmm, 100), 1440)


def _window_history(
    codes: np.ndarray, day: np.ndarray, label: np.ndarray, delay: np.ndarray, windows: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Per row: count, rate and mean of the labelled flights of the same entity (``codes``; -1 =
    null) on days ``[day - w, day - 1]``, from daily aggregates and prefix sums (a range window)."""
    import numpy as np
    import pandas as pd

    span = int(day.max()) + max(windows) + 2
    shifted = day + max(windows) + 1  # >= 1, so day - w - 1 stays inside the entity's key range
    valid = codes >= 0
    key = codes.astype(np.int64) * span + shifted
    daily = (
        pd.DataFrame({"key": key[valid], "n": 1, "label": label[valid], "delay": delay[valid]})
        .groupby("key", sort=True)
        .sum()
    )
    keys = daily.index.to_numpy()
    prefix = {c: np.concatenate([[0], np.cumsum(daily[c].to_numpy())]) for c in ("n", "label", "delay")}
    hi = np.searchsorted(keys, key - 1, side="right")
    out: dict[str, np.ndarray] = {}
    for w in windows:
        lo = np.searchsorted(keys, key - w - 1, side="right")
        n = np.where(valid, prefix["n"][hi] - prefix["n"][lo], 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(n > 0, (prefix["label"][hi] - prefix["label"][lo]) / n, np.nan)
            mean = np.where(n > 0, (prefix["delay"][hi] - prefix["delay"][lo]) / n, np.nan)
        out[f"flights_{w}d"], out[f"delay_rate_{w}d"], out[f"mean_arr_delay_{w}d"] = n, rate, mean
    return out


def _dedupe(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per non-null ``key``: the smallest values first, nulls last (``transforms.dedupe``)."""
    others = [c for c in df.columns if c != key]
    return df[df[key].notna()].sort_values([key, *others], na_position="last").drop_duplicates(key)


def pandas_features(inputs: Path, out: Path) -> dict[str, Any]:
    """The features with pandas/numpy, written to ``out`` (one Parquet file)."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    started = time.perf_counter()

    def read(table: str, columns: list[str] | None = None) -> pd.DataFrame:
        arrow = pq.read_table(inputs / f"{table}.parquet", columns=columns)
        return arrow.to_pandas(strings_to_categorical=True, ignore_metadata=True)

    fl = read("flights", list(FLIGHT_COLUMNS))
    fl = fl[fl["arr_delay"].notna()].reset_index(drop=True)
    cols: dict[str, Any] = {c: fl[c] for c in ("ds", "year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest")}
    cols["route"] = _concat_ws(fl["origin"].array, fl["dest"].array)
    cols["arr_delay"] = fl["arr_delay"].to_numpy(np.float64)
    cols[schema.LABEL] = (cols["arr_delay"] >= schema.DELAY_THRESHOLD_MINUTES).astype(np.int32)
    sched_dep = fl["sched_dep_time"].to_numpy(np.float64)
    cols["dep_hour"] = np.mod(np.trunc(sched_dep / 100), 24)
    cols["sched_dep_minutes"] = _clock_minutes(sched_dep)
    cols["sched_arr_minutes"] = _clock_minutes(fl["sched_arr_time"].to_numpy(np.float64))
    date = pd.to_datetime(pd.DataFrame({"year": fl["year"], "month": fl["month"], "day": fl["day"]}))
    weekday = date.dt.dayofweek.to_numpy()
    cols["day_of_week"], cols["day_of_year"], cols["is_weekend"] = weekday + 1, date.dt.dayofyear, weekday >= 5
    cols["distance"] = fl["distance"]

    key = ["ds", "origin", "year", "month", "day", "hour"]
    weather = read("weather", [*key, *features.WEATHER_FEATURES])
    hourly = weather.dropna(subset=key).astype({"ds": str, "origin": str})
    hourly = hourly.groupby(key)[list(features.WEATHER_FEATURES)].mean()
    # The join matches on values (the two frames' categories differ).
    joined = fl[key].astype({"ds": str, "origin": str}).merge(hourly, left_on=key, right_index=True, how="left")
    cols.update({c: joined[c].to_numpy(np.float64) for c in features.WEATHER_FEATURES})

    ds = fl["ds"].array
    ds_dates = pd.to_datetime(pd.Series(ds.categories)).to_numpy().astype("datetime64[D]")
    planes = _dedupe(read("planes", ["tailnum", "year", "seats", "engines"]), "tailnum").set_index("tailnum")
    tail = fl["tailnum"].array
    at = planes.index.get_indexer(tail.categories.astype(object))
    for name, column in (("plane_age", "year"), ("plane_seats", "seats"), ("plane_engines", "engines")):
        per_tail = np.where(at >= 0, planes[column].to_numpy(np.float64)[at], np.nan)
        cols[name] = _by_category(tail, per_tail)
    ds_year = _by_category(ds, ds_dates.astype("datetime64[Y]").astype(np.int64) + 1970.0)
    cols["plane_age"] = ds_year - cols["plane_age"]
    airports = _dedupe(read("airports", ["faa", "lat", "lon", "alt", "tz"]), "faa").set_index("faa")
    dest = fl["dest"].array
    at = airports.index.get_indexer(dest.categories.astype(object))
    for name in features.AIRPORT_FEATURES:
        per_dest = np.where(at >= 0, airports[name.removeprefix("dest_")].to_numpy(np.float64)[at], np.nan)
        cols[name] = _by_category(dest, per_dest)

    epoch = np.datetime64("2000-01-01", "D")
    flight_day = (date.to_numpy().astype("datetime64[D]") - epoch).astype(np.int64)
    target_day = _by_category(ds, (ds_dates - epoch).astype(np.float64)).astype(np.int64)
    if not np.array_equal(flight_day, target_day):  # one frame is both the days built and their history
        raise ValueError(f"{inputs}: some flights' year/month/day differ from their ds")
    for entity in features.HISTORY_ENTITIES:
        codes = cols[entity].codes if entity == "route" else fl[entity].array.codes
        hist = _window_history(codes, flight_day, cols[schema.LABEL], cols["arr_delay"], features.HISTORY_WINDOWS)
        cols.update({f"{entity}_{name}": values for name, values in hist.items()})

    # Straight to Arrow, column by column (a DataFrame first would hold every column twice more).
    import pyarrow as pa

    names = list(OUTPUT_TYPES)
    table = pa.table([_arrow(cols.pop(c), t) for c, t in OUTPUT_TYPES.items()], names=names)
    pq.write_table(table, out)
    return {"rows": table.num_rows, "seconds": time.perf_counter() - started}


def _arrow(values: Any, kind: str) -> Any:
    """One output column as Arrow, of the Spark job's type; NaN becomes null."""
    import numpy as np
    import pyarrow as pa

    if kind == "string":  # categoricals: dictionary-encoded strings, as Parquet stores them anyway
        import pandas as pd

        return pa.array(pd.Series(values))
    array = np.asarray(values, dtype=np.float64)
    mask = np.isnan(array)
    if kind == "double":
        return pa.array(array, mask=mask if mask.any() else None)
    kind_type = {"int": pa.int32(), "long": pa.int64()}[kind]
    return pa.array(np.where(mask, 0, array).astype(kind_type.to_pandas_dtype()), mask=mask if mask.any() else None)


# --- DuckDB -------------------------------------------------------------------------------------

_SQL_TYPES = {"string": "VARCHAR", "int": "INTEGER", "long": "BIGINT", "double": "DOUBLE"}


def duckdb_sql(inputs: Path) -> str:
    """One SELECT of the features over ``inputs``: daily aggregates per entity, range windows over them."""
    src = {t: f"read_parquet('{inputs / f'{t}.parquet'}')" for t in ("flights", "weather", "planes", "airports")}
    wx = ", ".join(f"avg({c}) AS {c}" for c in features.WEATHER_FEATURES)
    ctes = [
        f"""lab AS (
            SELECT *, concat_ws('-', origin, dest) AS route, (arr_delay >= {schema.DELAY_THRESHOLD_MINUTES})::INTEGER AS label,
                   make_date(year::INTEGER, month::INTEGER, day::INTEGER) AS fdate,
                   make_date(year::INTEGER, month::INTEGER, day::INTEGER) - DATE '2000-01-01' AS fday,
                   ds::DATE - DATE '2000-01-01' AS tday
            FROM {src['flights']} WHERE arr_delay IS NOT NULL)""",
        f"""wx AS (SELECT ds, origin, year, month, day, hour, {wx} FROM {src['weather']}
            WHERE ds IS NOT NULL AND origin IS NOT NULL AND year IS NOT NULL AND month IS NOT NULL
              AND day IS NOT NULL AND hour IS NOT NULL
            GROUP BY ds, origin, year, month, day, hour)""",
        f"""pl AS (SELECT tailnum, year AS pyear, seats, engines FROM {src['planes']} WHERE tailnum IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY tailnum ORDER BY year NULLS LAST, seats NULLS LAST, engines NULLS LAST) = 1)""",
        f"""ap AS (SELECT faa, lat, lon, alt, tz FROM {src['airports']} WHERE faa IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY faa ORDER BY lat NULLS LAST, lon NULLS LAST, alt NULLS LAST, tz NULLS LAST) = 1)""",
    ]
    selects, joins = [], []
    for e in features.HISTORY_ENTITIES:
        windows = ", ".join(
            f"w{w} AS (PARTITION BY e ORDER BY d RANGE BETWEEN {w} PRECEDING AND 1 PRECEDING)"
            for w in features.HISTORY_WINDOWS
        )
        sums = ", ".join(
            f"sum(n) OVER w{w} AS n{w}, sum(s_label) OVER w{w} AS l{w}, sum(s_delay) OVER w{w} AS s{w}"
            for w in features.HISTORY_WINDOWS
        )
        # The days a flight of the entity is built for join the aggregates with zero rows, so every
        # (entity, day) has a row to read its window at, even with no flight of its own that day.
        ctes.append(
            f"""h_{e} AS (
            SELECT e, d, {sums} FROM (
                SELECT e, d, sum(n) AS n, sum(s_label) AS s_label, sum(s_delay) AS s_delay FROM (
                    SELECT {e} AS e, fday AS d, 1 AS n, label AS s_label, arr_delay AS s_delay FROM lab
                    UNION ALL SELECT DISTINCT {e}, tday, 0, 0, 0.0 FROM lab
                ) WHERE e IS NOT NULL GROUP BY e, d)
            WINDOW {windows})"""
        )
        joins.append(f"LEFT JOIN h_{e} ON h_{e}.e = lab.{e} AND h_{e}.d = lab.tday")
        for w in features.HISTORY_WINDOWS:
            n = f"coalesce(h_{e}.n{w}, 0)"
            selects += [
                f"{n} AS {e}_flights_{w}d",
                f"CASE WHEN {n} > 0 THEN h_{e}.l{w}::DOUBLE / {n} END AS {e}_delay_rate_{w}d",
                f"CASE WHEN {n} > 0 THEN h_{e}.s{w} / {n} END AS {e}_mean_arr_delay_{w}d",
            ]
    hhmm = "(((trunc({0} / 100) * 60 + (({0} % 100) + 100) % 100) % 1440) + 1440) % 1440"
    exprs = {
        "ds": "lab.ds", "year": "lab.year", "month": "lab.month", "day": "lab.day", "carrier": "lab.carrier",
        "flight": "lab.flight", "tailnum": "lab.tailnum", "origin": "lab.origin", "dest": "lab.dest",
        "route": "lab.route", "arr_delay": "lab.arr_delay", schema.LABEL: "lab.label",
        "dep_hour": "((trunc(lab.sched_dep_time / 100) % 24) + 24) % 24",
        "sched_dep_minutes": hhmm.format("lab.sched_dep_time"),
        "sched_arr_minutes": hhmm.format("lab.sched_arr_time"),
        "day_of_week": "isodow(lab.fdate)", "day_of_year": "dayofyear(lab.fdate)",
        "is_weekend": "(isodow(lab.fdate) >= 6)::INTEGER", "distance": "lab.distance",
        **{c: f"wx.{c}" for c in features.WEATHER_FEATURES},
        "plane_age": "year(lab.ds::DATE) - pl.pyear", "plane_seats": "pl.seats", "plane_engines": "pl.engines",
        **{c: f"ap.{c.removeprefix('dest_')}" for c in features.AIRPORT_FEATURES},
    }  # fmt: skip
    history = {s.rsplit(" AS ", 1)[1]: s.rsplit(" AS ", 1)[0] for s in selects}
    exprs.update(history)
    columns = ",\n  ".join(f"CAST({exprs[c]} AS {_SQL_TYPES[t]}) AS {c}" for c, t in OUTPUT_TYPES.items())
    return (
        "WITH " + ",\n".join(ctes) + f"\nSELECT\n  {columns}\nFROM lab\n"
        "LEFT JOIN wx ON wx.ds = lab.ds AND wx.origin = lab.origin AND wx.year = lab.year AND wx.month = lab.month "
        "AND wx.day = lab.day AND wx.hour = lab.hour\n"
        "LEFT JOIN pl ON pl.tailnum = lab.tailnum\nLEFT JOIN ap ON ap.faa = lab.dest\n" + "\n".join(joins)
    )


def duckdb_features(inputs: Path, out: Path, threads: int = 2) -> dict[str, Any]:
    """The features in one DuckDB query, written to ``out`` (one Parquet file)."""
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(config={"threads": threads})
    try:
        con.execute(f"COPY ({duckdb_sql(inputs)}) TO '{out}' (FORMAT parquet)")
    finally:
        con.close()
    return {"rows": _parquet_rows(out), "seconds": time.perf_counter() - started}


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
