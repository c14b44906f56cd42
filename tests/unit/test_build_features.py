"""The PySpark features job: exact values on hand-built frames, no leakage, and real-data runs.

One local SparkSession serves the whole module (starting one costs ~10-20 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel import catalog, config, features, lake, landing, schema
from spark_jobs import build_features, transforms
from spark_jobs.session import get_spark

pytestmark = pytest.mark.spark

DS = dt.date(2013, 1, 10)  # a Thursday

FLIGHTS_DDL = (
    "year long, month long, day long, dep_time long, sched_dep_time long, dep_delay double, arr_time long, "
    "sched_arr_time long, arr_delay double, carrier string, flight long, tailnum string, origin string, "
    "dest string, air_time double, distance double, hour long, minute long, time_hour string"
)
WEATHER_DDL = (
    "origin string, year long, month long, day long, hour long, temp double, dewp double, humid double, "
    "wind_dir double, wind_speed double, wind_gust double, precip double, pressure double, visib double, "
    "time_hour string"
)
PLANES_DDL = (
    "tailnum string, year long, type string, manufacturer string, model string, engines long, seats long, "
    "speed double, engine string"
)
AIRPORTS_DDL = "faa string, name string, lat double, lon double, alt double, tz double, dst string, tzone string"

_flight_numbers = iter(range(1, 100_000))


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Spark's scratch dirs go to a temp FLYWHEEL_HOME (unless a session already runs in this process).
    home = tmp_path_factory.mktemp("spark_home")
    settings = dataclasses.replace(config.load(), home=home, lake=home / "lake")
    return get_spark("flywheel-tests", settings)


def flight(date: dt.date = DS, **overrides: Any) -> dict[str, Any]:
    """A labelled on-time AA flight JFK->LAX at 08:30 on ``date``; override any column."""
    row: dict[str, Any] = {
        "year": date.year,
        "month": date.month,
        "day": date.day,
        "dep_time": 830,
        "sched_dep_time": 830,
        "dep_delay": 0.0,
        "arr_time": 1130,
        "sched_arr_time": 1130,
        "arr_delay": 0.0,
        "carrier": "AA",
        "flight": next(_flight_numbers),
        "tailnum": "N1",
        "origin": "JFK",
        "dest": "LAX",
        "air_time": 300.0,
        "distance": 2475.0,
        "hour": 8,
        "minute": 30,
        "time_hour": f"{date.isoformat()}T13:00:00Z",
    }
    row.update(overrides)
    return row


def frame(spark: Any, rows: list[dict[str, Any]], ddl: str) -> Any:
    names = [part.strip().split(" ")[0] for part in ddl.split(",")]
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], schema=ddl)


def flights(spark: Any, rows: list[dict[str, Any]]) -> Any:
    return frame(spark, rows, FLIGHTS_DDL)


def weather_row(origin: str = "JFK", date: dt.date = DS, hour: int = 8, **values: float) -> dict[str, Any]:
    row: dict[str, Any] = {"origin": origin, "year": date.year, "month": date.month, "day": date.day, "hour": hour}
    row.update({c: 1.0 for c in features.WEATHER_FEATURES})
    row.update(values)
    return row


def by_flight(df: Any) -> dict[int, dict[str, Any]]:
    return {r["flight"]: r.asDict() for r in df.collect()}


# --- the contract ------------------------------------------------------------------------------


def test_output_types_cover_the_contract_in_order() -> None:
    assert tuple(transforms.OUTPUT_TYPES) == features.COLUMNS
    assert all(transforms.OUTPUT_TYPES[c] == "long" for c in features.HISTORY_FEATURES if "_flights_" in c)


# --- label and exclusions ----------------------------------------------------------------------


def test_label_threshold_and_exclusion_counts(spark: Any) -> None:
    rows = [
        flight(flight=1, arr_delay=14.0),
        flight(flight=2, arr_delay=15.0),
        flight(flight=3, arr_delay=-5.0),
        flight(flight=4, dep_time=None, arr_time=None, arr_delay=None),  # cancelled
        flight(flight=5, dep_time=None, arr_time=None, arr_delay=None),  # cancelled
        flight(flight=6, arr_time=None, arr_delay=None),  # diverted: departed, no arrival delay
    ]
    labelled, counts = transforms.label_and_exclusions(flights(spark, rows))
    assert {r["flight"]: r[schema.LABEL] for r in labelled.collect()} == {1: 0, 2: 1, 3: 0}
    assert counts.first().asDict() == {"landed_rows": 6, "excluded_cancelled": 2, "excluded_diverted": 1}


# --- calendar -----------------------------------------------------------------------------------


def test_calendar_features_for_known_dates(spark: Any) -> None:
    saturday, monday = dt.date(2013, 1, 5), dt.date(2013, 1, 7)
    rows = [
        flight(saturday, flight=1, sched_dep_time=1859, sched_arr_time=2400, hour=18),
        flight(monday, flight=2, sched_dep_time=5, sched_arr_time=115, hour=0),
        flight(dt.date(2013, 12, 31), flight=3, sched_dep_time=2359, sched_arr_time=1, hour=23),
    ]
    out = by_flight(transforms.calendar_features(flights(spark, rows)))
    pick = ("dep_hour", "sched_dep_minutes", "sched_arr_minutes", "day_of_week", "day_of_year", "is_weekend")
    assert {k: out[1][k] for k in pick} == dict(zip(pick, (18, 1139, 0, 6, 5, 1), strict=True))
    assert {k: out[2][k] for k in pick} == dict(zip(pick, (0, 5, 75, 1, 7, 0), strict=True))
    assert {k: out[3][k] for k in pick} == dict(zip(pick, (23, 1439, 1, 2, 365, 0), strict=True))


# --- joins --------------------------------------------------------------------------------------


def test_weather_join_averages_a_duplicated_hour_and_never_multiplies_rows(spark: Any) -> None:
    day = flights(
        spark,
        [
            flight(flight=1, origin="JFK", hour=1),
            flight(flight=2, origin="JFK", hour=1),
            flight(flight=3, origin="LGA", hour=1),  # LGA's hour 1 is duplicated below
            flight(flight=4, origin="EWR", hour=9),  # no weather for that hour
        ],
    )
    weather = frame(
        spark,
        [
            weather_row("JFK", hour=1, temp=30.0, wind_gust=None),
            weather_row("LGA", hour=1, temp=40.0, precip=0.0),
            weather_row("LGA", hour=1, temp=42.0, precip=0.2),
            weather_row("JFK", hour=2, temp=99.0),
        ],
        WEATHER_DDL,
    )
    joined = transforms.join_weather(day, weather)
    assert joined.count() == 4
    out = by_flight(joined)
    assert out[1]["temp"] == out[2]["temp"] == 30.0
    assert out[1]["wind_gust"] is None
    assert out[3]["temp"] == pytest.approx(41.0)
    assert out[3]["precip"] == pytest.approx(0.1)
    assert all(out[4][c] is None for c in features.WEATHER_FEATURES)


def test_plane_age_seats_engines_and_unknown_tailnums(spark: Any) -> None:
    day = flights(
        spark, [flight(flight=1, tailnum="N1"), flight(flight=2, tailnum="NX"), flight(flight=3, tailnum=None)]
    )
    planes = frame(
        spark,
        [{"tailnum": "N1", "year": 2000, "engines": 2, "seats": 180}, {"tailnum": "N2", "year": None, "seats": 5}],
        PLANES_DDL,
    )
    out = by_flight(transforms.join_planes(day, planes, 2013))
    assert (out[1]["plane_age"], out[1]["plane_seats"], out[1]["plane_engines"]) == (13, 180, 2)
    for unknown in (2, 3):
        assert (out[unknown]["plane_age"], out[unknown]["plane_seats"], out[unknown]["plane_engines"]) == (
            None,
            None,
            None,
        )


def test_airport_facts_join_on_destination(spark: Any) -> None:
    day = flights(spark, [flight(flight=1, dest="LAX"), flight(flight=2, dest="SJU")])
    airports = frame(spark, [{"faa": "LAX", "lat": 33.9, "lon": -118.4, "alt": 126.0, "tz": -8.0}], AIRPORTS_DDL)
    out = by_flight(transforms.join_airports(day, airports))
    assert [out[1][c] for c in features.AIRPORT_FEATURES] == [33.9, -118.4, 126.0, -8.0]
    assert [out[2][c] for c in features.AIRPORT_FEATURES] == [None] * 4


# --- history ------------------------------------------------------------------------------------


def _days_before(n: int) -> dt.date:
    return DS - dt.timedelta(days=n)


PAST = [
    # AA out of JFK to LAX, tail N1
    flight(_days_before(1), carrier="AA", arr_delay=30.0),
    flight(_days_before(7), carrier="AA", arr_delay=0.0),
    flight(_days_before(8), carrier="AA", arr_delay=60.0),  # in 28d, not in 7d
    flight(_days_before(28), carrier="AA", arr_delay=90.0, tailnum="N9"),  # first day of the 28d window
    flight(_days_before(29), carrier="AA", arr_delay=500.0),  # outside every window
    flight(_days_before(1), carrier="AA", dep_time=None, arr_delay=None),  # cancelled: no outcome
    flight(_days_before(2), carrier="AA", arr_time=None, arr_delay=None),  # diverted: no outcome
    # a flight without tail number teaches nothing about tail numbers
    flight(_days_before(2), carrier="B6", origin="LGA", dest="BOS", tailnum=None, arr_delay=20.0),
]


def _history(spark: Any, past: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    day = transforms.with_route(
        flights(
            spark,
            [
                flight(flight=1, carrier="AA", tailnum="N1"),
                flight(flight=2, carrier="UA", origin="EWR", dest="ORD", tailnum=None),
                flight(flight=3, carrier="B6", origin="LGA", dest="BOS", tailnum="N9"),
            ],
        )
    )
    return by_flight(transforms.history_features(day, flights(spark, past), DS))


def test_history_counts_rates_and_means_by_hand(spark: Any) -> None:
    out = _history(spark, PAST)
    aa = out[1]
    # 7d: days -1 (30, delayed) and -7 (0, on time)
    assert (aa["carrier_flights_7d"], aa["carrier_delay_rate_7d"], aa["carrier_mean_arr_delay_7d"]) == (2, 0.5, 15.0)
    # 28d adds -8 (60, delayed) and -28 (90, delayed); -29 and the unlabelled ones never count
    assert aa["carrier_flights_28d"] == 4
    assert aa["carrier_delay_rate_28d"] == pytest.approx(0.75)
    assert aa["carrier_mean_arr_delay_28d"] == pytest.approx(45.0)
    assert (aa["route_flights_7d"], aa["route_flights_28d"]) == (2, 4)
    # origin JFK: the same four AA flights; LGA's B6 flight is another origin
    assert (aa["origin_flights_7d"], aa["origin_flights_28d"]) == (2, 4)
    # tail N1 flew -1, -7, -8; the -28 flight was N9
    assert (aa["tailnum_flights_7d"], aa["tailnum_flights_28d"]) == (2, 3)
    assert aa["tailnum_mean_arr_delay_28d"] == pytest.approx(30.0)

    ua = out[2]  # no past at all, and no tail number
    for entity in features.HISTORY_ENTITIES:
        for w in features.HISTORY_WINDOWS:
            assert ua[f"{entity}_flights_{w}d"] == 0
            assert ua[f"{entity}_delay_rate_{w}d"] is None
            assert ua[f"{entity}_mean_arr_delay_{w}d"] is None

    b6 = out[3]
    assert (b6["carrier_flights_7d"], b6["carrier_delay_rate_7d"], b6["carrier_mean_arr_delay_7d"]) == (1, 1.0, 20.0)
    assert (b6["route_flights_28d"], b6["origin_flights_28d"]) == (1, 1)
    # N9's only labelled flight (-28) is in the 28d window; the null-tail B6 flight is not N9's
    assert (b6["tailnum_flights_7d"], b6["tailnum_flights_28d"], b6["tailnum_mean_arr_delay_28d"]) == (0, 1, 90.0)
    assert b6["tailnum_delay_rate_7d"] is None


def test_no_leakage_outcomes_on_or_after_the_day_change_nothing(spark: Any) -> None:
    before = _history(spark, PAST)
    future = [
        flight(DS, carrier=c, origin=o, dest=d, tailnum=t, arr_delay=999.0)
        for c, o, d, t in (("AA", "JFK", "LAX", "N1"), ("UA", "EWR", "ORD", "N9"), ("B6", "LGA", "BOS", None))
    ]
    future += [dict(f, day=DS.day + 1, flight=next(_flight_numbers)) for f in future]
    after = _history(spark, PAST + future)
    assert after == before


def test_history_window_edges(spark: Any) -> None:
    # One carrier per distance, so a single query checks every edge: [D-7, D-1] and [D-28, D-1].
    edges = (0, 1, 7, 8, 28, 29)
    day = flights(spark, [flight(flight=n, carrier=f"C{n}", tailnum=None) for n in edges])
    past = flights(spark, [flight(_days_before(n), carrier=f"C{n}", arr_delay=1.0) for n in edges])
    out = by_flight(transforms.history_features(day, past, DS))
    got = {n: (out[n]["carrier_flights_7d"], out[n]["carrier_flights_28d"]) for n in edges}
    assert got == {0: (0, 0), 1: (1, 1), 7: (1, 1), 8: (0, 1), 28: (0, 1), 29: (0, 0)}


def test_history_of_several_days_at_once_equals_each_day_alone(spark: Any) -> None:
    """Two target days in one call (a range), the first also history of the second: each day's
    values are those of a call for that day alone, and the second counts the first's outcomes."""
    first, second = DS, DS + dt.timedelta(days=1)
    past_rows = [flight(_days_before(n), arr_delay=d) for n, d in ((1, 30.0), (3, 0.0), (9, 60.0))]
    first_rows = [flight(first, arr_delay=20.0), flight(first, arr_delay=5.0, tailnum=None)]
    second_rows = [flight(second), flight(second, carrier="UA", origin="EWR", tailnum="N7")]
    past = flights(spark, past_rows + first_rows)  # the first day is landed history of the second
    tagged = [dict(r, ds=r_ds.isoformat()) for rows, r_ds in ((first_rows, first), (second_rows, second)) for r in rows]
    both = frame(spark, tagged, FLIGHTS_DDL + ", ds string")
    together = by_flight(transforms.history_features(both, past))
    alone = {
        **by_flight(transforms.history_features(flights(spark, first_rows), past, first)),
        **by_flight(transforms.history_features(flights(spark, second_rows), past, second)),
    }
    assert {k: {c: v for c, v in row.items() if c != "ds"} for k, row in together.items()} == alone
    aa_second = together[second_rows[0]["flight"]]
    # AA on the second day: the two AA flights of the first day (20, 5) and days -1 (30), -3 (0) from DS
    # are in [second-7, second-1]; the -9 one is only in the 28-day window.
    assert (aa_second["carrier_flights_7d"], aa_second["carrier_flights_28d"]) == (4, 5)
    assert aa_second["carrier_mean_arr_delay_7d"] == pytest.approx((20.0 + 5.0 + 30.0 + 0.0) / 4)
    assert aa_second["carrier_delay_rate_7d"] == pytest.approx(2 / 4)
    # N1 flew the first day's delayed flight (the other had no tail number) and the three past ones.
    assert (aa_second["tailnum_flights_7d"], aa_second["tailnum_flights_28d"]) == (3, 4)
    ua_second = together[second_rows[1]["flight"]]  # a carrier, origin and tail number with no past
    assert (ua_second["carrier_flights_28d"], ua_second["carrier_delay_rate_28d"]) == (0, None)
    assert ua_second["tailnum_flights_28d"] == 0 and ua_second["origin_flights_28d"] == 0


def test_history_windows_must_be_whole_days_before(spark: Any) -> None:
    day = flights(spark, [flight()])
    with pytest.raises(ValueError, match=r"history windows .* \(>= 1\): \(0, 7\)"):
        transforms.history_features(day, day, DS, windows=(0, 7))


# --- build --------------------------------------------------------------------------------------


def test_build_assembles_exactly_the_contract(spark: Any) -> None:
    day = flights(
        spark,
        [
            flight(flight=1, arr_delay=20.0),
            flight(flight=2, arr_delay=None, dep_time=None),
            flight(flight=3, tailnum=None, dest="SJU"),
        ],
    )
    past = flights(spark, [flight(_days_before(3), arr_delay=40.0)])
    weather = frame(spark, [weather_row("JFK", hour=8, temp=25.0)], WEATHER_DDL)
    planes = frame(spark, [{"tailnum": "N1", "year": 2003, "engines": 2, "seats": 150}], PLANES_DDL)
    airports = frame(spark, [{"faa": "LAX", "lat": 33.9, "lon": -118.4, "alt": 126.0, "tz": -8.0}], AIRPORTS_DDL)

    out, counts = transforms.build(day, past, weather, planes, airports, DS)
    assert tuple(out.columns) == features.COLUMNS
    assert {f.name: f.dataType.simpleString() for f in out.schema.fields} == {
        c: {"int": "int", "long": "bigint", "double": "double", "string": "string"}[t]
        for c, t in transforms.OUTPUT_TYPES.items()
    }
    assert counts == {"landed_rows": 3, "excluded_cancelled": 1, "excluded_diverted": 0}
    rows = by_flight(out)
    assert sorted(rows) == [1, 3]
    first = rows[1]
    assert (first["ds"], first["route"], first[schema.LABEL], first["arr_delay"]) == ("2013-01-10", "JFK-LAX", 1, 20.0)
    assert (first["day_of_week"], first["is_weekend"], first["temp"], first["plane_age"]) == (4, 0, 25.0, 10)
    assert (first["carrier_flights_7d"], first["carrier_mean_arr_delay_7d"]) == (1, 40.0)
    assert (rows[3]["dest_lat"], rows[3]["tailnum_flights_28d"]) == (None, 0)


# --- run(): real data in a temporary lake -------------------------------------------------------

REAL_DAYS = [dt.date(2013, 1, d) for d in (1, 2, 3)]


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Iterator[config.Settings]:
    """A lake holding the canonical (gate-passed) tables of 2013-01-01..03, written with the GX gate bypassed."""
    home = tmp_path_factory.mktemp("flywheel_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_HOME", str(home))
        mp.delenv("FLYWHEEL_LAKE", raising=False)
        mp.delenv("FLYWHEEL_SOURCE", raising=False)
        settings = config.load()
        for day in REAL_DAYS:
            landing.land(day, settings)
            frames = {t: landing.read_raw(landing.landed_file(day, t, settings.lake)) for t in schema.TABLES}
            landing.publish_canonical(day, frames, {"success": True}, settings.lake)
        yield settings


def _canonical_flights(settings: config.Settings, day: dt.date) -> pd.DataFrame:
    return pd.read_parquet(landing.canonical_path(day, "flights", settings.lake))


def test_run_real_day_counts_columns_and_manifest(real_lake: config.Settings) -> None:
    manifest = build_features.run("2013-01-03", output_dataset=catalog.FEATURES_CANDIDATE.dataset)
    path = Path(manifest["path"])
    assert path == catalog.FEATURES_CANDIDATE.path("2013-01-03", real_lake.lake)
    landed = _canonical_flights(real_lake, dt.date(2013, 1, 3))
    cancelled = int((landed["arr_delay"].isna() & landed["dep_time"].isna()).sum())
    diverted = int((landed["arr_delay"].isna() & landed["dep_time"].notna()).sum())
    assert (manifest["landed_rows"], manifest["excluded_cancelled"], manifest["excluded_diverted"]) == (
        len(landed),
        cancelled,
        diverted,
    )
    assert manifest["rows"] == len(landed) - cancelled - diverted == int(landed["arr_delay"].notna().sum())
    assert manifest["columns"] == list(features.COLUMNS)
    # History of 01-03 may only use 01-01 and 01-02; the other 26 days of the window are missing.
    assert manifest["history_days_available"] == {"7": 2, "28": 2}
    assert len(manifest["history_days_missing"]) == 26
    assert manifest["history_days_missing"][0] == "2012-12-06"
    assert manifest["history_days_missing"][-1] == "2012-12-31"
    assert json.loads((path / features.MANIFEST).read_text()) == {k: v for k, v in manifest.items() if k != "path"}

    out = catalog.FEATURES_CANDIDATE.read_frame("2013-01-03", real_lake.lake)
    assert list(out.columns) == list(features.COLUMNS)
    assert len(out) == manifest["rows"]
    assert not out[[c for c in features.REQUIRED_NON_NULL]].isna().any().any()
    assert list(path.glob(".*.crc")) == []

    # The carrier history equals a pandas computation over the labelled flights of 01-01 and 01-02 only.
    past = pd.concat([_canonical_flights(real_lake, d) for d in REAL_DAYS[:2]])
    past = past[past["arr_delay"].notna()]
    expected = (
        past.assign(late=(past["arr_delay"] >= 15).astype(float))
        .groupby("carrier")
        .agg(n=("late", "size"), rate=("late", "mean"), mean=("arr_delay", "mean"))
    )
    got = out.groupby("carrier")[
        ["carrier_flights_28d", "carrier_delay_rate_28d", "carrier_mean_arr_delay_28d"]
    ].first()
    for carrier, row in got.iterrows():
        if carrier in expected.index:
            assert row["carrier_flights_28d"] == expected.loc[carrier, "n"]
            assert row["carrier_delay_rate_28d"] == pytest.approx(expected.loc[carrier, "rate"])
            assert row["carrier_mean_arr_delay_28d"] == pytest.approx(float(expected.loc[carrier, "mean"]))
        else:
            assert row["carrier_flights_28d"] == 0
    assert (out["carrier_flights_7d"] == out["carrier_flights_28d"]).all()


def test_first_day_of_the_year_has_no_history(real_lake: config.Settings) -> None:
    manifest = build_features.run("2013-01-01")
    assert manifest["history_days_available"] == {"7": 0, "28": 0}
    assert len(manifest["history_days_missing"]) == 28
    out = catalog.FEATURES.read_frame("2013-01-01", real_lake.lake)
    counts = [c for c in features.HISTORY_FEATURES if "_flights_" in c]
    assert (out[counts] == 0).all().all()
    assert out[[c for c in features.HISTORY_FEATURES if c not in counts]].isna().all().all()


def test_rerun_gives_an_identical_partition_and_replaces_the_folder(real_lake: config.Settings) -> None:
    first = build_features.run("2013-01-02")
    path = Path(first["path"])
    first_files = sorted(p.name for p in path.glob("*.parquet"))
    first_frame = pd.read_parquet(path / first_files[0])

    second = build_features.run("2013-01-02")
    second_files = sorted(p.name for p in path.glob("*.parquet"))
    assert first == second
    assert len(second_files) == 1 and second_files != first_files  # a new folder was published
    second_frame = pd.read_parquet(path / second_files[0])
    pd.testing.assert_frame_equal(first_frame, second_frame)  # same rows in the same (key) order
    key = list(features.KEY_COLUMNS)
    assert first_frame[key].equals(first_frame[key].sort_values(key).reset_index(drop=True))
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [".versions"]  # no scratch, staging or pointer temporaries
    # The manifest names the landing versions it read (the day's own and its history days').
    landed = {d: lake.version("landing", "flights", d) for d in ("2013-01-01", "2013-01-02")}
    assert first["inputs"] == landed


def test_a_day_not_validated_is_a_clear_error(real_lake: config.Settings) -> None:
    with pytest.raises(build_features.FeaturesError, match=r"validate_landing") as err:
        build_features.run("2013-01-04")
    assert str(landing.canonical_path("2013-01-04", "flights", real_lake.lake)) in str(err.value)
    # Landed but not through the gate: still refused.
    landing.land("2013-01-04", real_lake)
    with pytest.raises(build_features.FeaturesError, match=r"not landed and validated"):
        build_features.run("2013-01-04")
    assert not catalog.FEATURES.exists("2013-01-04", real_lake.lake)


def test_a_join_that_multiplies_rows_publishes_nothing(
    real_lake: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = build_features.run("2013-01-02", output_dataset="flights_guard")
    part = Path(before["path"])
    files = sorted(p.name for p in part.iterdir())
    original = transforms.join_airports

    def doubled(df: Any, airports: Any) -> Any:
        joined = original(df, airports)
        return joined.unionByName(joined)

    monkeypatch.setattr(transforms, "join_airports", doubled)
    with pytest.raises(build_features.FeaturesError, match=r"duplicated or lost rows"):
        build_features.run("2013-01-02", output_dataset="flights_guard")
    assert sorted(p.name for p in part.iterdir()) == files  # the published partition is untouched
    assert lake.version_of(part) == Path(before["path"]).resolve().name
    assert [p.name for p in part.parent.iterdir() if p.name.startswith(".")] == [".versions"]  # no scratch left


def test_cli_main_writes_the_partition_and_reports_a_missing_day(
    real_lake: config.Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert build_features.main(["--ds", "2013-01-02", "--lake", str(real_lake.lake), "--output-dataset", "cli"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(lake.partition_path("features", "cli", "2013-01-02", real_lake.lake))
    assert build_features.main(["--ds", "2013-01-02", "--lake", str(tmp_path / "empty")]) == 1
    assert "validate_landing" in capsys.readouterr().err


def test_a_range_gives_every_day_exactly_the_rows_of_its_own_run(real_lake: config.Settings) -> None:
    """A range run (one Spark job for many days) publishes, for each day, the rows and manifest a
    run of that day alone publishes: same values, same order, same history coverage."""
    ranged = build_features.run_days(REAL_DAYS, output_dataset="ranged")
    assert [m["ds"] for m in ranged] == [d.isoformat() for d in REAL_DAYS]
    for day, manifest in zip(REAL_DAYS, ranged, strict=True):
        alone = build_features.run(day, output_dataset="alone")
        assert {k: v for k, v in manifest.items() if k != "path"} == {k: v for k, v in alone.items() if k != "path"}
        got = lake.read_frame("features", "ranged", day, real_lake.lake)
        want = lake.read_frame("features", "alone", day, real_lake.lake)
        pd.testing.assert_frame_equal(got, want)
        assert len(list(Path(manifest["path"]).glob("*.parquet"))) == 1
        # The later days' history uses the earlier days of the same range.
        assert manifest["history_days_available"]["28"] == REAL_DAYS.index(day)
    assert [p.name for p in lake.dataset_path("features", "ranged", real_lake.lake).iterdir() if p.name.startswith(".")] == [".versions"]


def test_a_range_with_a_day_not_validated_publishes_nothing(real_lake: config.Settings) -> None:
    days = [dt.date(2013, 1, 2), dt.date(2013, 1, 3), dt.date(2013, 1, 5)]
    with pytest.raises(build_features.FeaturesError, match=r"features ds=2013-01-05: the day is not landed"):
        build_features.run_days(days, output_dataset="gappy")
    assert not lake.dataset_path("features", "gappy", real_lake.lake).exists()


def test_cli_builds_a_range(real_lake: config.Settings, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--ds", "2013-01-01", "--through", "2013-01-03", "--lake", str(real_lake.lake), "--output-dataset", "cli_range"]
    assert build_features.main(argv) == 0
    assert [m["ds"] for m in json.loads(capsys.readouterr().out)] == ["2013-01-01", "2013-01-02", "2013-01-03"]
    assert build_features.main(["--days", "2013-01-03,2013-01-02", "--lake", str(real_lake.lake)]) == 0
    assert [m["ds"] for m in json.loads(capsys.readouterr().out)] == ["2013-01-02", "2013-01-03"]
    with pytest.raises(SystemExit):
        build_features.main(["--ds", "2013-01-03", "--through", "2013-01-01"])


# --- lineage: a rerun of an earlier day's landing is detected, never mixed in silently -----------


def _reland(day: dt.date, settings: config.Settings) -> None:
    """A rerun of the day's landing and its gate (same data, a new version of the partition)."""
    landing.land(day, settings)
    frames = {t: landing.read_raw(landing.landed_file(day, t, settings.lake)) for t in schema.TABLES}
    landing.publish_canonical(day, frames, {"success": True}, settings.lake)


def test_a_relanded_earlier_day_makes_the_later_days_stale(real_lake: config.Settings) -> None:
    build_features.run_days(REAL_DAYS, output_dataset=catalog.FEATURES.dataset)
    assert features.stale_partitions([REAL_DAYS[0]], real_lake.lake) == {}
    old = lake.version("landing", "flights", REAL_DAYS[0])
    _reland(REAL_DAYS[0], real_lake)
    new = lake.version("landing", "flights", REAL_DAYS[0])
    stale = features.stale_partitions([REAL_DAYS[0]], real_lake.lake)
    # Every published day whose manifest read the first day (itself, and the later days' history).
    assert stale == {d.isoformat(): [f"ds={REAL_DAYS[0]}: {old} -> {new}"] for d in REAL_DAYS}
    build_features.run_days(REAL_DAYS, output_dataset=catalog.FEATURES.dataset)
    assert features.stale_partitions([REAL_DAYS[0]], real_lake.lake) == {}


def test_an_input_relanded_while_the_job_reads_it_publishes_nothing(
    real_lake: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = build_features.run("2013-01-03", output_dataset="flights_race")
    original = lake.scratch

    @contextlib.contextmanager
    def scratch_while_relanding(*args: Any, **kwargs: Any) -> Iterator[Path]:
        _reland(dt.date(2013, 1, 2), real_lake)  # a rerun of an earlier day, mid-job
        with original(*args, **kwargs) as folder:
            yield folder

    monkeypatch.setattr(lake, "scratch", scratch_while_relanding)
    with pytest.raises(build_features.FeaturesError, match=r"changed while this job read them \(ds=2013-01-02: "):
        build_features.run("2013-01-03", output_dataset="flights_race")
    assert lake.version_of(Path(before["path"])) == Path(before["path"]).resolve().name  # untouched
