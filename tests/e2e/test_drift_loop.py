"""The closed loop through the real Airflow scheduler (LocalExecutor, api-server, dag-processor).

The stack and its data come from conftest.py (a champion trained on 8 days, two later days scored);
only ``flights_monitoring`` runs through the scheduler here. A clean day must not start a retraining;
a day with injected drift must make the scheduler itself create a ``flights_retraining`` run
(from the ``drift`` asset event) that finishes with a decision in the promotion history.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.story import AIRFLOW_PORT, CLEAN_DAY, DRIFT_DAY
from tests.services import listening_addresses

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

def _retraining_runs() -> list[dict]:
    from flywheel.airflow_api import AirflowAPI

    return AirflowAPI().runs("flights_retraining")


def test_the_api_refuses_anonymous_requests_and_accepts_the_generated_login(airflow_stack):
    import httpx

    from flywheel import stack

    url = airflow_stack.airflow_url
    assert url == f"http://127.0.0.1:{AIRFLOW_PORT}"
    assert httpx.get(f"{url}/api/v2/dags").status_code == 401
    assert httpx.get(f"{url}/api/v2/dags", headers={"Authorization": "Bearer forged"}).status_code in (401, 403)
    wrong = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": "admin"})
    assert wrong.status_code == 401
    password = stack.admin_password(airflow_stack)
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
    from flywheel import demo
    from flywheel.drift.daily_log import read_monitoring_history
    from flywheel.registry import history

    settings = airflow_stack
    run = demo.Demo(settings, CLEAN_DAY, CLEAN_DAY)
    demo.wait_for_dag(run, "flights_retraining")
    demo.wait_for_dag(run, "flights_monitoring")

    # A clean day: monitored, no drift, no retraining run.
    assert demo.backfill(run, "flights_monitoring", max_active_runs=1, poll=2) == {CLEAN_DAY.isoformat(): "success"}
    rows = read_monitoring_history(settings)
    assert rows["decision"].tolist() == ["ok"], rows.to_dict("records")
    time.sleep(10)  # give the scheduler the chance to (wrongly) create a run
    assert _retraining_runs() == []

    # A drifting day: the policy says drift, the scheduler starts flights_retraining by itself.
    run = demo.Demo(settings, DRIFT_DAY, DRIFT_DAY)
    assert demo.backfill(run, "flights_monitoring", max_active_runs=1, poll=2) == {DRIFT_DAY.isoformat(): "success"}
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
    assert runs[0]["run_type"] == "asset_triggered"
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
