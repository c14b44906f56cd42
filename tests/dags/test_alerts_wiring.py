"""The alert callbacks sit on the tasks where gates fail and decisions are made, and nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.orchestration import alerts

DAGS = Path(__file__).resolve().parents[2] / "dags"

# (dag_id, task_id) -> (callback kind, alert class, gate name for gate alerts)
EXPECTED = {
    ("flights_features", "land"): ("on_failure_callback", alerts.GateFailureAlert, "landing"),
    ("flights_features", "validate_landing"): ("on_failure_callback", alerts.GateFailureAlert, "landing gate"),
    ("flights_features", "validate_features"): ("on_failure_callback", alerts.GateFailureAlert, "features gate"),
    ("flights_features", "check_days"): ("on_failure_callback", alerts.QuarantineAlert, None),
    ("flights_scoring", "check_days"): ("on_failure_callback", alerts.QuarantineAlert, None),
    ("flights_monitoring", "check_days"): ("on_failure_callback", alerts.QuarantineAlert, None),
    ("flights_monitoring", "drift_detected"): ("on_success_callback", alerts.DriftAlert, None),
    **{
        (dag_id, "train_and_gate.validate_training_set"): (
            "on_failure_callback",
            alerts.GateFailureAlert,
            "training-set gate",
        )
        for dag_id in ("flights_training", "flights_retraining")
    },
    **{
        (dag_id, "train_and_gate.promote_or_reject"): ("on_success_callback", alerts.PromotionAlert, None)
        for dag_id in ("flights_training", "flights_retraining")
    },
}
KINDS = ("on_failure_callback", "on_success_callback", "on_retry_callback", "on_execute_callback")


def _alerts_of(task, kind: str) -> list[alerts.FlywheelAlert]:
    callbacks = getattr(task, kind) or []
    if not isinstance(callbacks, list):
        callbacks = [callbacks]
    return [cb for cb in callbacks if isinstance(cb, alerts.FlywheelAlert)]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


@pytest.mark.parametrize("where", sorted(EXPECTED), ids=lambda w: ".".join(w))
def test_alert_is_attached(dagbag, where: tuple[str, str]) -> None:
    dag_id, task_id = where
    kind, cls, gate = EXPECTED[where]
    task = dagbag.dags[dag_id].get_task(task_id)
    found = _alerts_of(task, kind)
    assert [type(cb) for cb in found] == [cls], f"{dag_id}.{task_id}.{kind}: {found}"
    if gate is not None:
        assert found[0].gate == gate


def test_no_other_task_sends_alerts(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            for kind in KINDS:
                if _alerts_of(task, kind):
                    assert EXPECTED.get((dag_id, task.task_id), (None,))[0] == kind, f"{dag_id}.{task.task_id}.{kind}"


def test_the_training_set_gate_reads_as_of_from_its_group(dagbag) -> None:
    for dag_id in ("flights_training", "flights_retraining"):
        dag = dagbag.dags[dag_id]
        [gate] = _alerts_of(dag.get_task("train_and_gate.validate_training_set"), "on_failure_callback")
        assert f"train_and_gate.{gate.as_of_task}" in dag.task_ids
