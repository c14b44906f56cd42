"""DAG integrity: every DAG file imports cleanly, cheaply, and follows the house rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
HEAVY = ("pyspark", "mlflow", "great_expectations", "evidently", "sklearn", "pandas")
EXPECTED_DAGS = {"flights_features", "flights_training", "flights_scoring", "flights_monitoring", "flights_retraining"}

# Parses the DAG folder in a fresh interpreter where any Variable, Connection, DB or network
# access raises, and reports what it imported.
_PARSE_PROBE = r"""
import json, socket, sys

def forbid(what):
    def _raise(*a, **k):
        raise RuntimeError(f"DAG parsing touched {what}")
    return _raise

socket.socket.connect = forbid("the network")
import sqlalchemy.engine
sqlalchemy.engine.Engine.connect = forbid("the metadata database")
from airflow.sdk import Connection, Variable
Variable.get = staticmethod(forbid("an Airflow Variable"))
Connection.get = staticmethod(forbid("an Airflow Connection"))

from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1])
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(","))),
    "stats": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
    "operators": {d: {t.task_id: type(t).__name__ for t in dag.tasks} for d, dag in bag.dags.items()},
}))
"""


def _parse(extra_env: dict[str, str] | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), **(extra_env or {}))
    out = subprocess.run(
        [sys.executable, "-c", _PARSE_PROBE, str(DAGS), ",".join(HEAVY)],
        env=env, capture_output=True, text=True, check=True, cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed() -> dict:
    return _parse()


def test_every_dag_file_imports_without_errors(parsed):
    assert parsed["errors"] == {}
    assert EXPECTED_DAGS <= set(parsed["dags"])


def test_parsing_imports_no_heavy_library(parsed):
    assert parsed["heavy"] == [], f"DAG parsing imported {parsed['heavy']}: import them inside task bodies"


def test_every_dag_file_is_parsed(parsed):
    files = {p.name for p in DAGS.glob("*.py") if not p.name.startswith("_")}
    assert files == {Path(f).name for f in parsed["stats"]}


def test_kubernetes_execution_parses_and_uses_a_pod():
    parsed = _parse({"FLYWHEEL_EXECUTION": "kubernetes"})
    assert parsed["errors"] == {}
    assert parsed["operators"]["flights_features"]["build_features"] == "KubernetesPodOperator"
    assert parsed["operators"]["flights_features"]["land"] == "_PythonDecoratedOperator"


def test_local_execution_runs_spark_in_a_task(parsed):
    assert parsed["operators"]["flights_features"]["build_features"] == "_PythonDecoratedOperator"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


def test_house_rules(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.owner == "flywheel", f"{dag_id}.{task.task_id} owner is {task.owner}"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_flights_features_structure(dagbag):
    dag = dagbag.dags["flights_features"]
    order = [
        "land", "validate_landing", "wait_for_history", "build_features", "validate_features", "emit_features_event", "check_days",
    ]  # fmt: skip
    assert [t.task_id for t in dag.topological_sort()] == order
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.catchup is False
    assert dag.max_active_runs == 3
    assert dag.get_task("wait_for_history").mode == "reschedule"
    assert dag.start_date.date().isoformat() == "2013-01-01"
    assert dag.end_date.date().isoformat() == "2013-12-31"
    assert [a.name for a in dag.get_task("emit_features_event").outlets] == ["flights_features"]
    assert set(dag.params.keys()) == {"from_ds", "to_ds"}  # range runs


TRAIN_GROUP = [
    "train_and_gate.assemble_training_set",
    "train_and_gate.validate_training_set",
    "train_and_gate.train_challenger",
    "train_and_gate.evaluate_challenger",
    "train_and_gate.promote_or_reject",
]


def test_flights_training_structure(dagbag):
    dag = dagbag.dags["flights_training"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
    assert set(dag.params.keys()) == {"as_of", "window_days", "tuning_trials", "rollback_to_version", "rollback_reason"}
    assert dag.get_task("choose_mode").downstream_task_ids == {TRAIN_GROUP[0], "rollback_champion"}
    for upstream, downstream in zip(TRAIN_GROUP, TRAIN_GROUP[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert dag.get_task(TRAIN_GROUP[-1]).downstream_task_ids == set()


def test_flights_scoring_structure(dagbag):
    dag = dagbag.dags["flights_scoring"]
    assert [t.task_id for t in dag.topological_sort()] == ["wait_for_features", "score", "check_days"]
    assert dag.get_task("wait_for_features").mode == "reschedule"
    assert [a.name for a in dag.get_task("score").outlets] == ["flights_predictions"]
    assert dag.catchup is False


def test_flights_monitoring_structure(dagbag):
    dag = dagbag.dags["flights_monitoring"]
    assert dag.max_active_runs == 1  # the policy counts consecutive days: days run in order
    assert dag.get_task("wait_for_predictions").downstream_task_ids == {"monitor"}
    assert dag.get_task("branch_on_drift").downstream_task_ids == {"drift_detected", "no_drift"}
    assert [a.name for a in dag.get_task("drift_detected").outlets] == ["drift"]
    assert dag.get_task("no_drift").outlets == []
    # The run fails for days it could not monitor only after the branch emitted its drift event.
    check = dag.get_task("check_days")
    assert check.upstream_task_ids == {"monitor", "drift_detected", "no_drift"}
    assert check.trigger_rule == "none_failed_min_one_success"


def _outlets(dag) -> set[str]:
    return {a.name for task in dag.tasks for a in task.outlets}


def test_the_loop_is_one_chain_of_partitioned_assets(dagbag):
    """What Airflow's asset graph shows: features -> scoring -> predictions -> monitoring -> drift ->
    retraining, each consumer a partitioned-asset DAG (its runs know their days from the event's key)."""
    chain = [
        ("flights_features", "flights_features", "flights_scoring"),
        ("flights_scoring", "flights_predictions", "flights_monitoring"),
        ("flights_monitoring", "drift", "flights_retraining"),
    ]
    for producer, asset, consumer in chain:
        assert _outlets(dagbag.dags[producer]) == {asset}, producer
        timetable = dagbag.dags[consumer].timetable
        assert type(timetable).__name__ == "PartitionedAssetTimetable", consumer
        assert timetable.asset_condition.name == asset, consumer
    assert _outlets(dagbag.dags["flights_retraining"]) == set()
    assert type(dagbag.dags["flights_features"].timetable).__name__ != "PartitionedAssetTimetable"  # by date


def test_flights_retraining_is_scheduled_on_the_drift_asset(dagbag):
    dag = dagbag.dags["flights_retraining"]
    assert dag.timetable.asset_condition.name == "drift"
    assert dag.max_active_runs == 1
    assert dag.get_task("should_retrain").downstream_task_ids == {"train_and_gate.assemble_training_set"}
    group = [t for t in dag.task_ids if t.startswith("train_and_gate.")]
    assert sorted(group) == sorted(TRAIN_GROUP)
