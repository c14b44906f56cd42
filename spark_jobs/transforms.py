"""Pure DataFrame -> DataFrame steps of the features job (no I/O, no UDFs).

Everything is a Column expression, so the same code runs on a local session and on Spark
Connect. :func:`build_days` assembles exactly :data:`flywheel.features.COLUMNS`, in that order, for
one day or many at once (a range run): every input row carries the ``ds`` of the partition it was
read from, and joins and history windows are per ``ds``, so a day's rows are the same whichever
days are built with it. :func:`build` is the one-day case.

Inputs are the canonical tables of :mod:`flywheel.schema` as Spark reads their Parquet
(``Int64`` -> long, ``Float64`` -> double, ``string`` -> string).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from flywheel import features, lake, schema

# Spark type of every output column. Counts are long, other integers int, measurements double.
OUTPUT_TYPES: dict[str, str] = {
    "ds": "string",
    "year": "int",
    "month": "int",
    "day": "int",
    "carrier": "string",
    "flight": "int",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
    "route": "string",
    "arr_delay": "double",
    schema.LABEL: "int",
    "dep_hour": "int",
    "sched_dep_minutes": "int",
    "sched_arr_minutes": "int",
    "day_of_week": "int",
    "day_of_year": "int",
    "is_weekend": "int",
    "distance": "double",
    **{c: "double" for c in features.WEATHER_FEATURES},
    "plane_age": "int",
    "plane_seats": "int",
    "plane_engines": "int",
    **{c: "double" for c in features.AIRPORT_FEATURES},
    **{c: ("long" if "_flights_" in c else "double") for c in features.HISTORY_FEATURES},
}
if tuple(OUTPUT_TYPES) != features.COLUMNS:  # the contract moved; this table must follow it
    raise ImportError("spark_jobs.transforms.OUTPUT_TYPES must list flywheel.features.COLUMNS in order")

WEATHER_KEY = ("origin", "year", "month", "day", "hour")
# Day numbers for the history windows count from here (any fixed date would do).
_EPOCH = dt.date(2000, 1, 1)


def flight_date(prefix: str = "") -> Column:
    """The flight's calendar date from its ``year``/``month``/``day`` columns."""
    return F.make_date(F.col(f"{prefix}year"), F.col(f"{prefix}month"), F.col(f"{prefix}day"))


def with_route(df: DataFrame) -> DataFrame:
    """Add ``route`` = ``origin-dest`` (e.g. ``JFK-LAX``)."""
    return df.withColumn("route", F.concat_ws("-", F.col("origin"), F.col("dest")))


def with_label(df: DataFrame) -> DataFrame:
    """Add ``is_delayed`` (1 when ``arr_delay >= 15``); null stays null for unlabelled rows."""
    return df.withColumn(schema.LABEL, (F.col("arr_delay") >= schema.DELAY_THRESHOLD_MINUTES).cast("int"))


def label_and_exclusions(flights: DataFrame, by: Sequence[str] = ()) -> tuple[DataFrame, DataFrame]:
    """Labelled flights, and a frame counting what was landed and what was excluded (one row, or
    one per value of the ``by`` columns).

    A flight without ``arr_delay`` has no label: cancelled when it never departed (no
    ``dep_time``), diverted when it departed but has no arrival delay. So
    ``landed_rows = labelled + excluded_cancelled + excluded_diverted`` always holds.
    """
    unlabelled = F.col("arr_delay").isNull()
    counts = flights.groupBy(*by).agg(
        F.count(F.lit(1)).alias("landed_rows"),
        F.count(F.when(unlabelled & F.col("dep_time").isNull(), 1)).alias("excluded_cancelled"),
        F.count(F.when(unlabelled & F.col("dep_time").isNotNull(), 1)).alias("excluded_diverted"),
    )
    return with_label(flights.where(~unlabelled)), counts


def _clock_minutes(hhmm: Column) -> Column:
    # 2400 means midnight at the end of the day; the minute of day is 0 like 0000.
    return F.pmod((hhmm.cast("int") / 100).cast("int") * 60 + F.pmod(hhmm.cast("int"), 100), 1440)


def calendar_features(df: DataFrame) -> DataFrame:
    """Departure hour, scheduled minutes of day, ISO day of week (1 = Monday), day of year, weekend flag."""
    date = flight_date()
    sched_dep = F.col("sched_dep_time").cast("int")
    return (
        df.withColumn("dep_hour", F.pmod((sched_dep / 100).cast("int"), 24))
        .withColumn("sched_dep_minutes", _clock_minutes(F.col("sched_dep_time")))
        .withColumn("sched_arr_minutes", _clock_minutes(F.col("sched_arr_time")))
        # F.weekday is 0 = Monday .. 6 = Sunday; F.dayofweek would start on Sunday.
        .withColumn("day_of_week", F.weekday(date) + 1)
        .withColumn("day_of_year", F.dayofyear(date))
        .withColumn("is_weekend", (F.weekday(date) >= 5).cast("int"))
    )


def dedupe(df: DataFrame, key: Sequence[str]) -> DataFrame:
    """One row per key, chosen deterministically (smallest values first), so a join never multiplies rows."""
    others = [c for c in df.columns if c not in key]
    order = [F.col(c).asc_nulls_last() for c in others] or [F.lit(1)]
    rank = F.row_number().over(Window.partitionBy(*key).orderBy(*order))
    return df.withColumn("_rank", rank).where(F.col("_rank") == 1).drop("_rank")


def _day_key(df: DataFrame, other: DataFrame) -> list[str]:
    """``["ds"]`` when both frames carry the partition date: a day's flights join that day's tables only."""
    return ["ds"] if "ds" in df.columns and "ds" in other.columns else []


def join_weather(df: DataFrame, weather: DataFrame) -> DataFrame:
    """Left-join the origin's weather of the scheduled departure hour (flights' ``hour``).

    The weather table repeats some local hours (the DST change in November); the duplicates
    are averaged so every flight keeps exactly one row.
    """
    key = _day_key(df, weather) + list(WEATHER_KEY)
    hourly = weather.groupBy(*key).agg(*[F.avg(F.col(c).cast("double")).alias(c) for c in features.WEATHER_FEATURES])
    return df.join(hourly, on=key, how="left")


def join_planes(df: DataFrame, planes: DataFrame, year: int | None = None) -> DataFrame:
    """Left-join plane facts by ``tailnum``: age in years at ``year`` (default: the year of each
    row's ``ds``), seats, engines (null when unknown)."""
    day = _day_key(df, planes)
    facts = dedupe(
        planes.select(*day, "tailnum", "year", "seats", "engines").where(F.col("tailnum").isNotNull()),
        [*day, "tailnum"],
    )
    at = F.lit(year) if year is not None else F.year(F.to_date(F.col("ds")))
    facts = facts.select(
        *day,
        "tailnum",
        (at - F.col("year")).alias("plane_age"),
        F.col("seats").alias("plane_seats"),
        F.col("engines").alias("plane_engines"),
    )
    return df.join(facts, on=[*day, "tailnum"], how="left")


def join_airports(df: DataFrame, airports: DataFrame) -> DataFrame:
    """Left-join the destination airport's latitude, longitude, altitude and UTC offset."""
    day = _day_key(df, airports)
    facts = dedupe(
        airports.select(*day, "faa", "lat", "lon", "alt", "tz").where(F.col("faa").isNotNull()), [*day, "faa"]
    )
    facts = facts.select(
        *day,
        F.col("faa").alias("dest"),
        F.col("lat").alias("dest_lat"),
        F.col("lon").alias("dest_lon"),
        F.col("alt").alias("dest_alt"),
        F.col("tz").alias("dest_tz"),
    )
    return df.join(facts, on=[*day, "dest"], how="left")


def history_features(
    day_flights: DataFrame,
    past_flights: DataFrame,
    ds: str | dt.date | None = None,
    windows: Iterable[int] = features.HISTORY_WINDOWS,
) -> DataFrame:
    """Add per-entity outcome history of the ``w`` days before each flight's day D (never D or later).

    D is ``ds`` when given, else each row's own ``ds`` column (several days at once). For each
    entity in :data:`flywheel.features.HISTORY_ENTITIES` and window ``w``, over past flights with
    a label and a date in ``[D - w, D - 1]``: ``{entity}_flights_{w}d`` (count, 0 when none),
    ``{entity}_delay_rate_{w}d`` and ``{entity}_mean_arr_delay_{w}d`` (null when the count is 0).
    A flight without a tail number gets count 0 and nulls for ``tailnum``.

    Computed from daily totals per entity (flights, delayed, sum of arrival delays) and range
    windows over each entity's days: the (entity, D) pairs of the target flights are added as
    zero rows, each window sums the totals of the ``w`` days before its row's day, and the pairs'
    rows are joined back. One sort per entity instead of pairing every day's totals with every
    target day whose window holds it. The label and the delays are whole numbers, so the sums
    are exact and the rates and means are the same doubles an average over the flights gives.
    """
    windows = tuple(windows)
    if not windows or min(windows) < 1:
        raise ValueError(f"history windows are whole days before the flight's day (>= 1): {windows}")
    out = day_flights if "route" in day_flights.columns else with_route(day_flights)
    target = F.lit(lake.parse_ds(ds)) if ds is not None else F.to_date(F.col("ds"))
    out = out.withColumn("_target", target).withColumn("_day", F.datediff(F.col("_target"), F.lit(_EPOCH)))
    # The (entity, day) pairs of every entity from the target flights as given (not from ``out``
    # after an entity's join), one frame Spark can compute once for the four entities.
    keys = out.select(*features.HISTORY_ENTITIES, "_day").distinct()
    # The filter is here, not in the reader, so leakage is impossible whatever the caller passes:
    # a window ends the day before its row's day, and only labelled flights are counted.
    past = with_route(with_label(past_flights.where(F.col("arr_delay").isNotNull())))
    past = past.withColumn("_day", F.datediff(flight_date(), F.lit(_EPOCH)))
    zeros = [F.lit(0).cast("long").alias("_n"), F.lit(0.0).alias("_delayed"), F.lit(0.0).alias("_delay")]
    for entity in features.HISTORY_ENTITIES:
        daily = (
            past.where(F.col(entity).isNotNull())
            .groupBy(entity, "_day")
            .agg(
                F.count(F.lit(1)).alias("_n"),
                F.sum(F.col(schema.LABEL).cast("double")).alias("_delayed"),
                F.sum(F.col("arr_delay").cast("double")).alias("_delay"),
            )
            .withColumn("_pair", F.lit(False))
        )
        pairs = (
            keys.where(F.col(entity).isNotNull())
            .select(entity, "_day")
            .distinct()
            .select(entity, "_day", *zeros)
            .withColumn("_pair", F.lit(True))
        )
        rows = daily.unionByName(pairs)
        cols: list[Column] = []
        for w in windows:
            frame = Window.partitionBy(entity).orderBy("_day").rangeBetween(-w, -1)
            n = F.coalesce(F.sum("_n").over(frame), F.lit(0))
            cols += [
                n.alias(f"{entity}_flights_{w}d"),
                F.when(n > 0, F.sum("_delayed").over(frame) / n).alias(f"{entity}_delay_rate_{w}d"),
                F.when(n > 0, F.sum("_delay").over(frame) / n).alias(f"{entity}_mean_arr_delay_{w}d"),
            ]
        # A pair may meet its own day's totals (a day of the range is history for later days):
        # both rows get the same windows, which end the day before; keep the pair's row.
        stats = rows.select(entity, "_day", "_pair", *cols).where(F.col("_pair")).drop("_pair")
        out = out.join(stats, on=["_day", entity], how="left")
        # No past flight for the entity: the count is a true 0, the rate and mean stay unknown.
        out = out.fillna(0, subset=[f"{entity}_flights_{w}d" for w in windows])
    return out.drop("_target", "_day")


def build_days(
    flights: DataFrame,
    past_flights: DataFrame,
    weather: DataFrame,
    planes: DataFrame,
    airports: DataFrame,
) -> tuple[DataFrame, dict[str, dict[str, int]]]:
    """The features of every day in ``flights`` (exactly ``features.COLUMNS``) and each day's
    landed/excluded counts, keyed by ``ds``.

    ``flights``, ``weather``, ``planes`` and ``airports`` carry a ``ds`` column: the day whose
    partition a row was read from. ``past_flights`` may hold any days; only labelled flights of
    each day's history windows are used. Collects one small row per day for the counts;
    everything else stays lazy.
    """
    labelled, counts_df = label_and_exclusions(flights, by=["ds"])
    # History first: its (entity, day) pairs then come from the flights, not from a joined frame
    # (which Spark would compute again for them).
    df = history_features(calendar_features(with_route(labelled)), past_flights)
    df = join_weather(df, weather)
    df = join_planes(df, planes)
    df = join_airports(df, airports)
    out = df.select(*[F.col(c).cast(t).alias(c) for c, t in OUTPUT_TYPES.items()])
    counts = {row["ds"]: {k: int(v) for k, v in row.asDict().items() if k != "ds"} for row in counts_df.collect()}
    return out, counts


def build(
    flights_day: DataFrame,
    past_flights: DataFrame,
    weather: DataFrame,
    planes: DataFrame,
    airports: DataFrame,
    ds: str | dt.date,
) -> tuple[DataFrame, dict[str, int]]:
    """The features of day ``ds`` (exactly ``features.COLUMNS``) and its landed/excluded counts:
    :func:`build_days` with every input read from day ``ds``'s partition."""
    day = lake.parse_ds(ds).isoformat()
    tagged = [f.withColumn("ds", F.lit(day)) for f in (flights_day, weather, planes, airports)]
    out, counts = build_days(tagged[0], past_flights, *tagged[1:])
    return out, counts.get(day, {"landed_rows": 0, "excluded_cancelled": 0, "excluded_diverted": 0})
