"""flights_training then flights_scoring with ``dag.test()`` on real features of January 2013.

The feature partitions are built once for the module through the same functions the features
DAG runs (land -> landing gate -> Spark -> features gate); the features DAG itself is tested in
test_features_dag.py.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pendulum
import pytest

from flywheel import catalog, config, lake
from tests.services import fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[2]
DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(10)]
AS_OF = DAYS[-1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A home with 10 real feature partitions; small training settings for speed."""
    from flywheel import landing
    from flywheel.validation import validate_features, validate_landing
    from spark_jobs import build_features

    home = tmp_path_factory.mktemp("training")
    patch = pytest.MonkeyPatch()
    patch.setenv("FLYWHEEL_HOME", str(home / "home"))
    patch.setenv("FLYWHEEL_HOLDOUT_DAYS", "3")
    patch.setenv("FLYWHEEL_TUNING_TRIALS", "2")
    patch.delenv("FLYWHEEL_SOURCE", raising=False)
    patch.setenv("MLFLOW_TRACKING_URI", fresh_database("mlflow_it_training"))
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True)
    for day in DAYS:
        landing.land(day)
        validate_landing(day)
        build_features.run(day, output_dataset=catalog.FEATURES_CANDIDATE.dataset)
        validate_features(day)
    yield config.load()
    patch.undo()


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags")).dags[dag_id]


def _xcom(run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value").one()
        return row.value


def test_training_then_scoring(env):
    from mlflow import MlflowClient

    from flywheel.registry import history

    conf = {"as_of": AS_OF.isoformat(), "window_days": len(DAYS), "tuning_trials": 2}
    run = _dag("flights_training").test(run_conf=conf)
    assert run.state == "success"

    trained = _xcom(run, "train_and_gate.train_challenger")
    decision = _xcom(run, "train_and_gate.promote_or_reject")
    assert decision["decision"] == "promoted" and decision["champion_before"] is None
    assert trained["metrics"]["roc_auc"] > 0.6

    client = MlflowClient(env.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(env.model_name, "champion")
    assert int(champion.version) == int(trained["model_version"])
    mlflow_run = client.get_run(trained["run_id"])
    inputs = mlflow_run.inputs.dataset_inputs
    contexts = {t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context"}
    assert {"training", "holdout"} <= contexts
    training_input = next(i for i in inputs if any(t.value == "training" for t in i.tags))
    input_tags = {t.key: t.value for t in training_input.tags}
    assert int(input_tags["rows"]) == trained["rows"]["train"]
    assert len(input_tags["content_sha256"]) == 64
    assert mlflow_run.data.tags["airflow.dag_id"] == "flights_training"
    assert mlflow_run.data.tags["airflow.run_id"] == run.run_id

    records = history.read_history(env)
    assert [r["decision"] for r in records] == ["promoted"]
    assert records[0]["version"] == int(trained["model_version"]) and records[0]["as_of"] == AS_OF.isoformat()

    day = DAYS[-2]
    score_run = _dag("flights_scoring").test(logical_date=pendulum.datetime(day.year, day.month, day.day, tz="UTC"))
    assert score_run.state == "success"
    first = lake.read_frame("predictions", "flights", day, env.lake)
    feats = catalog.FEATURES.read_frame(day, env.lake)
    assert len(first) == len(feats)
    assert set(first["model_version"].astype(int)) == {int(trained["model_version"])}
    assert first["probability"].between(0, 1).all()

    # Rerunning scoring for the same day gives the same rows.
    from flywheel.scoring import score_partition

    score_partition(day)
    again = lake.read_frame("predictions", "flights", day, env.lake)
    assert again.equals(first)

    # A range run (from_ds/to_ds Params) scores each of its days with the rows a one-day run gives.
    earlier = DAYS[-3]
    range_run = _dag("flights_scoring").test(
        logical_date=pendulum.datetime(day.year, day.month, day.day, 12, tz="UTC"),
        run_conf={"from_ds": earlier.isoformat(), "to_ds": day.isoformat()},
    )
    assert range_run.state == "success"
    assert lake.read_frame("predictions", "flights", day, env.lake).equals(first)
    assert len(lake.read_frame("predictions", "flights", earlier, env.lake)) == len(
        catalog.FEATURES.read_frame(earlier, env.lake)
    )
    scored = _xcom(range_run, "score")
    assert scored["days"] == [earlier.isoformat(), day.isoformat()] and len(scored["results"]) == 2
