"""flywheel.drift: Evidently drift on frames with a known shift, quality, and one monitored day end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow_store import features_frame, fresh_store, register, tiny_pipeline

from flywheel import catalog, features, lake, schema
from flywheel.drift import DriftError, daily_log, monitor
from flywheel.drift.quality import quality_frame, quality_metrics
from flywheel.drift.reference import baseline_thresholds, clear_reference_cache, column_distance
from flywheel.drift.report import COLUMN_DRIFT_THRESHOLD, MONITORED_FEATURES, PROBABILITY, drift_metrics
from flywheel.training.data import MODEL_FEATURES

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration

CARRIERS = ("AA", "B6", "DL", "UA", "EV")
# Most cases compare a few columns: Evidently renders a plot per column while it runs (~0.1 s each).
SOME = ("carrier", "origin", "dest", "temp", "humid", "precip", "wind_gust", "plane_age", "carrier_delay_rate_7d")


def model_frame(rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Model inputs (standard-normal numbers, uniform carriers/airports), a label and a probability."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "carrier": rng.choice(CARRIERS, rows),
            "origin": rng.choice(("EWR", "JFK", "LGA"), rows),
            "dest": rng.choice(("ATL", "ORD", "LAX", "BOS", "MIA"), rows),
        }
    )
    for col in features.NUMERIC_FEATURES:
        frame[col] = rng.normal(size=rows) + (shift or {}).get(col, 0.0)
    frame[PROBABILITY] = rng.beta(2, 6, rows) + (shift or {}).get(PROBABILITY, 0.0)
    frame[schema.LABEL] = (rng.uniform(size=rows) < frame[PROBABILITY]).astype("int64")
    return frame


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return model_frame(3000, seed=1)


def test_monitored_features_leave_out_the_day_constants() -> None:
    assert set(MONITORED_FEATURES) == set(MODEL_FEATURES) - {"day_of_week", "day_of_year", "is_weekend"}
    assert len(MONITORED_FEATURES) == len(MODEL_FEATURES) - 3


def test_a_sample_of_the_same_distribution_does_not_drift(reference: pd.DataFrame) -> None:
    m = drift_metrics(reference, model_frame(800, seed=2))
    assert (m["n_drifted"], m["drift_share"], m["drifted_features"]) == (0, 0.0, [])
    assert m["n_columns"] == len(MONITORED_FEATURES)
    assert max(m["column_drift"].values()) < COLUMN_DRIFT_THRESHOLD
    assert m["prediction_drift_distance"] < COLUMN_DRIFT_THRESHOLD
    # Without calibrated thresholds, the ratio is over the default 0.1.
    assert m["prediction_drift"] == pytest.approx(m["prediction_drift_distance"] / 0.1)
    assert m["column_methods"]["temp"] == "wasserstein"
    assert m["column_methods"]["carrier"] == "jensenshannon"
    assert (m["reference_rows"], m["current_rows"], m["skipped_columns"]) == (3000, 800, {})


def test_a_shifted_numeric_column_is_flagged(reference: pd.DataFrame) -> None:
    m = drift_metrics(reference, model_frame(800, seed=2, shift={"temp": 1.0}), columns=SOME)
    assert m["drifted_features"] == ["temp"]
    assert m["n_drifted"] == 1
    assert m["drift_share"] == 1 / len(SOME)
    # One standard deviation of shift is a normed Wasserstein distance of about 1.
    assert 0.9 < m["column_drift"]["temp"] < 1.1


def test_a_shifted_category_mix_and_shifted_scores_are_flagged(reference: pd.DataFrame) -> None:
    current = model_frame(800, seed=2, shift={PROBABILITY: 0.15})
    current["carrier"] = np.where(np.arange(800) % 5 == 0, "B6", "UA")  # 80 % UA instead of 20 %
    m = drift_metrics(reference, current, columns=SOME)
    assert m["drifted_features"] == ["carrier"]
    assert m["column_drift"]["carrier"] > 0.3
    # The scores' std is about 0.14: a shift of 0.15 is about one reference std.
    assert 0.9 < m["prediction_drift_distance"] < 1.2
    assert m["current_mean_probability"] - m["reference_mean_probability"] == pytest.approx(0.15, abs=0.02)


def test_column_distance_is_evidentlys_number(reference: pd.DataFrame) -> None:
    current = model_frame(800, seed=2, shift={"temp": 0.5})
    current.loc[current.index[:100], "temp"] = np.nan
    m = drift_metrics(reference, current, columns=["carrier", "temp"])
    assert column_distance(reference["temp"], current["temp"], False) == pytest.approx(
        m["column_drift"]["temp"]
    )
    assert column_distance(reference["carrier"], current["carrier"], True) == pytest.approx(
        m["column_drift"]["carrier"], abs=1e-6
    )
    assert column_distance(reference["temp"], current["temp"].iloc[:100], False) is None


def test_baseline_thresholds_are_the_window_days_95th_percentile() -> None:
    # A window of 20 days; each day's temp sits k/10 standard deviations away: distances about 0.0 .. 1.9.
    days = []
    for k in range(20):
        day = model_frame(400, seed=10 + k, shift={"temp": k / 10})
        day["ds"] = f"2013-01-{k + 1:02d}"
        days.append(day)
    window = pd.concat(days, ignore_index=True)
    reference = model_frame(3000, seed=1)
    t = baseline_thresholds(reference, window, columns=["temp", "humid", "carrier"])
    per_day = [column_distance(reference["temp"], d["temp"], False) for d in days]
    assert t["temp"] == round(float(np.quantile(per_day, 0.95)), 6)
    assert 1.7 < t["temp"] < 2.0
    assert 0.1 <= t["humid"] < 0.2  # unshifted: sampling noise of 400-row days, or the floor
    assert t["carrier"] == 0.1
    assert set(t) == {"temp", "humid", "carrier", "probability"}
    # A day 1.5 std away is within this window's normal range; with the default threshold it drifts.
    current = model_frame(800, seed=2, shift={"temp": 1.5})
    assert drift_metrics(reference, current, columns=["temp", "humid"], thresholds=t)["drifted_features"] == []
    assert drift_metrics(reference, current, columns=["temp", "humid"])["drifted_features"] == ["temp"]


def test_all_null_columns_are_skipped_not_fatal(reference: pd.DataFrame) -> None:
    current = model_frame(800, seed=2)
    current["wind_gust"] = np.nan  # a day without gust readings
    ref = reference.copy()
    ref["plane_age"] = np.nan
    ref["dest"] = None
    m = drift_metrics(ref, current, columns=SOME)
    assert m["skipped_columns"] == {
        "wind_gust": "all values are null in the current data",
        "plane_age": "all values are null in the reference data",
        "dest": "all values are null in the reference data",
    }
    assert m["n_columns"] == len(SOME) - 3
    assert "wind_gust" not in m["column_drift"]
    assert m["n_drifted"] == 0


def test_partly_null_columns_are_compared_on_their_values(reference: pd.DataFrame) -> None:
    current = model_frame(800, seed=2, shift={"humid": 2.0})
    current.loc[current.index[:400], "humid"] = np.nan
    assert drift_metrics(reference, current, columns=SOME)["drifted_features"] == ["humid"]


def test_missing_columns_and_empty_frames_are_errors(reference: pd.DataFrame) -> None:
    with pytest.raises(DriftError, match=r"the current frame lacks the columns \['temp'\]"):
        drift_metrics(reference, model_frame(50, seed=3).drop(columns=["temp"]))
    with pytest.raises(DriftError, match="the current frame has no rows"):
        drift_metrics(reference, model_frame(50, seed=3).iloc[:0])


def test_quality_on_a_tiny_frame() -> None:
    frame = pd.DataFrame({schema.LABEL: [0, 0, 1, 1], "probability": [0.1, 0.4, 0.35, 0.8], "decision": [0, 0, 0, 1]})
    q = quality_metrics(frame)
    assert q["roc_auc"] == 0.75
    assert (q["labelled_rows"], q["base_rate"], q["f1"], q["quality_reason"]) == (4, 0.5, 2 / 3, None)


def test_quality_of_a_single_class_day_is_null_with_the_reason() -> None:
    frame = pd.DataFrame({schema.LABEL: [0, 0, 0], "probability": [0.1, 0.2, 0.3]})
    q = quality_metrics(frame)
    assert q["roc_auc"] is None
    assert q["quality_reason"] == "ROC AUC is undefined: a single label class (0) in 3 rows"
    assert quality_metrics(None, "predictions ds=2013-02-09 do not exist")["quality_reason"] == (
        "predictions ds=2013-02-09 do not exist"
    )


# ---- one day end to end: lake, a registered champion, scoring, Evidently, MLflow, history -------------------


def _day(n: int) -> str:
    return (dt.date(2013, 1, 1) + dt.timedelta(days=n)).isoformat()


def test_monitor_day_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from flywheel import scoring
    from flywheel.drift.__main__ import main as cli

    settings = fresh_store(tmp_path, monkeypatch, FLYWHEEL_DRIFT_SHARE="0.5", FLYWHEEL_DRIFT_CONSECUTIVE_DAYS="2")
    clear_reference_cache()
    window = [features_frame(_day(n), rows=150, seed=n) for n in range(5)]  # 01-01 .. 01-05
    for frame in window:
        catalog.FEATURES.write_frame(frame, frame["ds"].iloc[0], settings.lake)
    version = register(
        settings,
        tiny_pipeline(pd.concat(window, ignore_index=True)),
        window=f"{_day(0)}..{_day(4)}",
        **{"metric.roc_auc": "0.950000"},
    )
    mlflow.MlflowClient().set_registered_model_alias(settings.model_name, "champion", str(version))
    # 01-06 and 01-07: most numeric inputs moved by two standard deviations.
    for n in (5, 6):
        frame = features_frame(_day(n), rows=150, seed=n)
        for col in features.WEATHER_FEATURES + features.HISTORY_FEATURES:
            frame[col] = frame[col] + 2.0
        catalog.FEATURES.write_frame(frame, _day(n), settings.lake)
        scoring.score_partition(_day(n), settings)

    first = monitor.monitor_day(_day(5), settings)
    row = first["row"]
    assert (row["ds"], row["champion_version"], row["champion_holdout_auc"]) == ("2013-01-06", version, 0.95)
    assert row["signal"] is True and row["decision"] == "ok" and row["streak"] == 1
    assert row["drift_share"] >= 0.5 and "temp" in row["drifted_features"].split(",")
    assert row["quality_ds"] == "2013-01-06" and row["roc_auc"] is not None
    assert first["reference"]["window"] == "2013-01-01..2013-01-05"
    assert first["reference"]["window_source"] == "model version tag 'window'"
    assert (first["reference"]["rows"], first["reference"]["days"]) == (750, 5)
    assert set(first["reference"]["thresholds"]) == {*MONITORED_FEATURES, "probability"}
    assert min(first["reference"]["thresholds"].values()) >= 0.1
    report = Path(first["paths"]["report"])
    assert report == lake.partition_path("reports", "monitoring", _day(5), settings.lake) / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    saved = json.loads((report.parent / "metrics.json").read_text())
    assert saved["row"]["mlflow_run_id"] == row["mlflow_run_id"] != ""

    second = monitor.monitor_day(_day(6), settings)
    assert (second["row"]["decision"], second["row"]["streak"]) == ("drift", 2)
    assert second["evidence"]["streak_days"] == ["2013-01-06", "2013-01-07"]
    assert second["evidence"]["drift_share"] == second["row"]["drift_share"]

    # A rerun replaces the day's history row; the history is one row per day, oldest first.
    monitor.monitor_day(_day(6), settings)
    history = daily_log.read_monitoring_history(settings)
    assert list(history["ds"]) == ["2013-01-06", "2013-01-07"]
    assert list(history["decision"]) == ["ok", "drift"]
    assert list(history.columns[:12]) == list(daily_log.HISTORY_COLUMNS[:12])

    runs = mlflow.search_runs(experiment_names=[settings.mlflow_experiment + "_monitoring"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["monitor-2013-01-06", "monitor-2013-01-07", "monitor-2013-01-07"]
    run = next(r for r in runs if r.info.run_id == row["mlflow_run_id"])
    assert run.data.tags["flywheel.champion_version"] == str(version)
    assert run.data.metrics["drift_share"] == row["drift_share"]
    assert run.data.params["reference_window"] == "2013-01-01..2013-01-05"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(row["mlflow_run_id"])}
    assert artifacts == {"report.html", "metrics.json"}

    # With a label lag of 1 day, 01-07 is judged on the labels of 01-06.
    lagged = monitor.monitor_day(_day(6), dataclasses.replace(settings, label_lag_days=1))
    assert lagged["row"]["quality_ds"] == "2013-01-06"
    assert lagged["row"]["roc_auc"] == first["row"]["roc_auc"]
    assert "label lag 1 days" in lagged["quality"]["note"]

    # A day without predictions says what to run.
    with pytest.raises(DriftError, match=r"cannot monitor ds=2013-01-08: predictions partition .* Run flights_scoring"):
        monitor.monitor_day(_day(7), settings)

    assert cli(["history"]) == 0
    assert cli(["--ds", _day(7)]) == 1


def test_quality_pools_the_window_of_the_monitored_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel import config

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_QUALITY_WINDOW_DAYS", "3")
    settings = config.load()

    def predictions(day: dt.date, version: int, rows: int) -> None:
        frame = pd.DataFrame({"model_version": [version] * rows, "probability": [0.5] * rows, schema.LABEL: [0, 1] * (rows // 2)})
        lake.write_frame(frame, "predictions", "flights", day, settings.lake)

    d = dt.date(2013, 2, 10)
    predictions(d - dt.timedelta(days=1), 1, 4)
    predictions(d - dt.timedelta(days=2), 2, 6)  # another version's rows never mix in
    predictions(d - dt.timedelta(days=3), 1, 8)  # outside the 3-day window
    current = pd.DataFrame({"probability": [0.1, 0.9], schema.LABEL: [0, 1]})
    frame, quality_day, note = quality_frame(d, current, settings, 1)
    assert quality_day == d
    assert len(frame) == 4 + 2
    assert "2 scored day(s) in 2013-02-08..2013-02-10" in note

    monkeypatch.setenv("FLYWHEEL_LABEL_LAG_DAYS", "1")
    frame, quality_day, note = quality_frame(d, current, config.load(), 1)
    # D has no labels yet: the window moves back a day, to 2013-02-07..2013-02-09 (v1 rows: 8 + 4).
    assert quality_day == d - dt.timedelta(days=1) and len(frame) == 12
