"""The closed loop through the real Airflow scheduler (LocalExecutor, api-server, dag-processor).

The stack and its data come from conftest.py (a champion trained on 8 days, two later days scored).
Here a ``flights_scoring`` run is triggered for one day (its partition key); everything after it is
the scheduler's, through the asset graph: the predictions event creates that day's
``flights_monitoring`` run (same key). A clean day must not start a retraining; a day with injected
drift must make the scheduler itself create a ``flights_retraining`` run (from the ``drift`` event,
same key) that finishes with a decision in the promotion history.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.story import AIRFLOW_PORT, CLEAN_DAY, DRIFT_DAY
from tests.services import asset_triggered_run, listening_addresses

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

def _retraining_runs() -> list[dict]:
    from flywheel.airflow_api import AirflowAPI

    return AirflowAPI().runs("flights_retraining")


def _score_then_monitor(api, day) -> dict:
    """Trigger scoring for ``day``; wait for the monitoring run the scheduler creates from the
    predictions event; both must succeed. Returns the monitoring run."""
    key = day.isoformat()
    scoring = api.wait_run("flights_scoring", api.trigger("flights_scoring", partition_key=key)["dag_run_id"], timeout=300)
    assert scoring["state"] == "success", api.task_states("flights_scoring", scoring["dag_run_id"])
    monitoring = asset_triggered_run(api, "flights_monitoring", key, timeout=600)
    assert monitoring["state"] == "success", api.task_states("flights_monitoring", monitoring["dag_run_id"])
    return monitoring


def test_the_api_refuses_anonymous_requests_and_accepts_the_generated_login(airflow_stack):
    import httpx

    from flywheel import launch

    url = airflow_stack.airflow_url
    assert url == f"http://127.0.0.1:{AIRFLOW_PORT}"
    assert httpx.get(f"{url}/api/v2/dags").status_code == 401
    assert httpx.get(f"{url}/api/v2/dags", headers={"Authorization": "Bearer forged"}).status_code in (401, 403)
    wrong = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": "admin"})
    assert wrong.status_code == 401
    password = launch.admin_password(airflow_stack)
    assert oct(airflow_stack.passwords_file.stat().st_mode & 0o777) == "0o600"
    token = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": password})
    assert token.status_code == 201
    dags = httpx.get(f"{url}/api/v2/dags", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert dags.status_code == 200 and "total_entries" in dags.json()
    listeners = listening_addresses(airflow_stack)
    assert listeners and all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip, _ in listeners), listeners
    login_page = httpx.get(f"{url}/auth/login")
    assert login_page.status_code == 200 and "<html" in login_page.text.lower()


def test_drift_starts_retraining_through_the_scheduler(airflow_stack):
    from flywheel import demo_runs
    from flywheel.drift.daily_log import read_monitoring_history
    from flywheel.registry import history

    settings = airflow_stack
    run = demo_runs.Demo(settings, CLEAN_DAY, CLEAN_DAY)
    for dag_id in ("flights_scoring", "flights_monitoring", "flights_retraining"):
        demo_runs.wait_for_dag(run, dag_id)
    # What Airflow's asset view draws: the loop as one chain.
    assert run.api.asset_graph() == [
        ("flights_features", "flights_features", "flights_scoring"),
        ("flights_monitoring", "drift", "flights_retraining"),
        ("flights_scoring", "flights_predictions", "flights_monitoring"),
    ]

    # A clean day: scored, monitored (by the run its predictions event created), no drift, no retraining run.
    _score_then_monitor(run.api, CLEAN_DAY)
    rows = read_monitoring_history(settings)
    assert rows["decision"].tolist() == ["ok"], rows.to_dict("records")
    time.sleep(10)  # give the scheduler the chance to (wrongly) create a run
    assert _retraining_runs() == []

    # A drifting day: the policy says drift, the scheduler starts flights_retraining by itself.
    _score_then_monitor(run.api, DRIFT_DAY)
    rows = read_monitoring_history(settings)
    assert rows["decision"].tolist() == ["ok", "drift"]

    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        runs = _retraining_runs()
        if runs and runs[0]["state"] in ("success", "failed"):
            break
        time.sleep(5)
    else:
        pytest.fail(f"no finished flights_retraining run within 15 minutes: {runs}")
    assert len(runs) == 1
    assert runs[0]["run_type"] == "asset_triggered" and runs[0]["partition_key"] == DRIFT_DAY.isoformat()
    states = run.api.task_states("flights_retraining", runs[0]["dag_run_id"])
    assert runs[0]["state"] == "success", f"task states {states}; logs under {settings.airflow_home / 'logs'}"

    records = [r for r in history.read_history(settings) if r["source"] == "retraining"]
    assert len(records) == 1
    record = records[0]
    assert record["decision"] in ("promoted", "rejected") and record["reason"]
    assert record["as_of"] == DRIFT_DAY.isoformat()
    evidence = record["run"]["drift_evidence"]
    assert evidence["ds"] == DRIFT_DAY.isoformat() and evidence["drift_share"] >= 0.8
    assert evidence["report_path"].endswith("report.html")
