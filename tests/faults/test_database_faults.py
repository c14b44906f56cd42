"""PostgreSQL restarted while a run is in flight.

The suite's embedded PostgreSQL (``session_database``) is the server of the stack's Airflow metadata
and of its MLflow store. While a ``flights_scoring`` range run (2013-01-01..02, whose features the
e2e tier built) is inside its ``score`` task, which reads the champion from MLflow's store, the server is stopped (fast shutdown: every connection is cut), left down a few seconds and
started again. Airflow's scheduler, dag-processor and triggerer exit on a lost connection (by design:
they expect a process manager to start them again); the stack's watchdog
(:func:`flywheel.processes.supervise`) must start them once the database answers. What must be left:

- every component of the stack running; each one that exited was restarted by the watchdog, which
  counted it and said why (the lost database) in its log;
- the run succeeds, or fails with a try whose log names what was unreachable and then succeeds
  when rerun;
- nothing half-written: each day's predictions hold a row per features row, all from the champion,
  and the lake holds no staging folder;
- MLflow's server answers again, with the same champion.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request

import pytest

pytestmark = pytest.mark.faults

DAG = "flights_scoring"
DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]
DOWN_S = 5  # how long the database stays down
UNREACHABLE = re.compile(r"OperationalError|connection to server|could not connect|database system is", re.I)


def _champion(settings) -> tuple[int, str]:
    """The champion's version and run, from the MLflow server's REST API (not this process's store)."""
    url = f"{settings.mlflow_ui_url}/api/2.0/mlflow/registered-models/get?name={settings.model_name}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        model = json.load(resp)["registered_model"]
    (version,) = [a["version"] for a in model.get("aliases", []) if a["alias"] == "champion"]
    return int(version), model["name"]


@pytest.mark.timeout(600)
def test_postgres_restarted_during_scoring_the_stack_recovers_and_the_run_succeeds(faults_stack, session_database):
    from flywheel import database, demo, features, lake, processes, stack

    settings = faults_stack
    expected = stack.expected_components(settings)
    watched = [n for n in expected if n != "postgres"]
    champion = _champion(settings)
    run = demo.Demo(settings, DAYS[0], DAYS[-1])
    demo.wait_for_dag(run, DAG)
    api = run.api
    pids = {name: processes.pid_of(settings, name) for name in watched}
    restarts_before = stack.restarts(settings)["restarts"]
    started = time.monotonic()
    run_id = api.trigger(DAG, {"from_ds": DAYS[0].isoformat(), "to_ds": DAYS[-1].isoformat()})["dag_run_id"]

    deadline = time.monotonic() + 180
    while (states := api.task_states(DAG, run_id)).get("score") != "running":
        assert "failed" not in states.values(), states
        assert time.monotonic() < deadline, f"score did not start within 3 minutes: {states}"
        time.sleep(0.5)
    assert database.stop(session_database)
    stopped = time.monotonic()
    time.sleep(DOWN_S)
    assert database.start(session_database)
    back = time.monotonic()

    final = api.wait_run(DAG, run_id, timeout=300)
    rerun = None
    if final["state"] != "success":
        # A clear failure: the failed tries' logs name what was unreachable. Then the rerun succeeds.
        logs = {}
        for ti in api.instances(DAG, run_id):
            for attempt in api.tries(DAG, run_id, ti["task_id"]):
                if attempt["state"] == "failed":
                    logs[f"{ti['task_id']}#{attempt['try_number']}"] = api.task_log(DAG, run_id, ti["task_id"], attempt["try_number"])
        assert logs and all(UNREACHABLE.search(text) for text in logs.values()), logs
        rerun = sorted(logs)
        api.clear_task_instances(DAG, run_id)
        final = api.wait_run(DAG, run_id, timeout=300)
    assert final["state"] == "success", api.task_states(DAG, run_id)
    finished = time.monotonic()

    # The stack: everything runs; whatever exited was restarted by the watchdog, for the lost database.
    stack.check_running(settings, expected)
    now = {name: processes.pid_of(settings, name) for name in watched}
    exited = sorted(name for name in watched if now[name] != pids[name])
    assert "airflow-scheduler" in exited, f"the scheduler survived the restart of its database? {pids} -> {now}"
    restarts = stack.restarts(settings)["restarts"]
    assert {name: restarts.get(name, 0) - restarts_before.get(name, 0) for name in exited} == dict.fromkeys(exited, 1)
    watchdog_log = processes.log_of(settings, stack.WATCHDOG).read_text()
    assert "lost database" in watchdog_log and "restarted" in watchdog_log, watchdog_log[-2000:]

    # Nothing half-written: every flight of each day scored once, by the champion; no staging left.
    for day in DAYS:
        predictions = lake.read_frame("predictions", "flights", day, settings.lake)
        assert len(predictions) == len(lake.read_frame("features", features.DATASET, day, settings.lake)), day
        assert set(predictions["model_version"].astype(int)) == {champion[0]}, day
    assert sorted(str(p) for p in settings.lake.rglob("*.staging")) == []
    assert _champion(settings) == champion  # MLflow's server answers again, and its registry is intact
    tries = {ti["task_id"]: ti["try_number"] for ti in api.instances(DAG, run_id)}
    print(
        f"\nscoring run: PostgreSQL stopped {stopped - started:.0f}s after the trigger, down {back - stopped:.0f}s; "
        f"restarted by the watchdog: {exited}; run done {finished - back:.0f}s after the database came back "
        f"(tries {tries}, rerun after {rerun})"
    )
