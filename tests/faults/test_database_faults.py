"""PostgreSQL restarted while a run is in flight.

The suite's embedded PostgreSQL (``session_database``) is the server of the stack's Airflow metadata
and of its MLflow store. While a ``flights_scoring`` range run (2013-01-01..02, whose features the
e2e tier built) is inside its ``score`` task, which reads the champion from MLflow's store, the server is stopped (fast shutdown: every connection is cut), left down a few seconds and
started again. Airflow's scheduler, dag-processor and triggerer exit on a lost connection (by design:
they expect a process manager to start them again); the stack's watchdog
(:func:`flywheel.watchdog.supervise`) must start them once the database answers. What must be left:

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
import os
import re
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults

DAG = "flights_scoring"
DAYS = [dt.date(2013, 1, 1), dt.date(2013, 1, 2)]
DOWN_S = 5  # how long the database stays down
UNREACHABLE = re.compile(r"OperationalError|connection to server|could not connect|database system is", re.I)
REPO = Path(__file__).resolve().parents[2]


def _champion(settings) -> tuple[int, str]:
    """The champion's version and run, from the MLflow server's REST API (not this process's store)."""
    url = f"{settings.mlflow_ui_url}/api/2.0/mlflow/registered-models/get?name={settings.model_name}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        model = json.load(resp)["registered_model"]
    (version,) = [a["version"] for a in model.get("aliases", []) if a["alias"] == "champion"]
    return int(version), model["name"]


@pytest.mark.timeout(600)
def test_postgres_restarted_during_scoring_the_stack_recovers_and_the_run_succeeds(faults_stack, session_database):
    from flywheel import catalog, database, demo_runs, lake, processes, stack, watchdog

    settings = faults_stack
    expected = stack.expected_components(settings)
    watched = [n for n in expected if n != "postgres"]
    champion = _champion(settings)
    run = demo_runs.Demo(settings, DAYS[0], DAYS[-1])
    demo_runs.wait_for_dag(run, DAG)
    api = run.api
    pids = {name: processes.pid_of(settings, name) for name in watched}
    restarts_before = watchdog.restarts(settings)["restarts"]
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
    restarts = watchdog.restarts(settings)["restarts"]
    assert {name: restarts.get(name, 0) - restarts_before.get(name, 0) for name in exited} == dict.fromkeys(exited, 1)
    watchdog_log = processes.log_of(settings, watchdog.WATCHDOG).read_text()
    assert "lost database" in watchdog_log and "restarted" in watchdog_log, watchdog_log[-2000:]

    # Nothing half-written: every flight of each day scored once, by the champion; no staging left.
    for day in DAYS:
        predictions = lake.read_frame("predictions", "flights", day, settings.lake)
        assert len(predictions) == len(catalog.FEATURES.read_frame(day, settings.lake)), day
        assert set(predictions["model_version"].astype(int)) == {champion[0]}, day
    assert sorted(str(p) for p in settings.lake.rglob("*.staging")) == []
    assert _champion(settings) == champion  # MLflow's server answers again, and its registry is intact
    tries = {ti["task_id"]: ti["try_number"] for ti in api.instances(DAG, run_id)}
    print(
        f"\nscoring run: PostgreSQL stopped {stopped - started:.0f}s after the trigger, down {back - stopped:.0f}s; "
        f"restarted by the watchdog: {exited}; run done {finished - back:.0f}s after the database came back "
        f"(tries {tries}, rerun after {rerun})"
    )


# A component that runs until a flag file tells it to exit the way Airflow's components exit when
# their database goes away (an uncaught OperationalError), or with another error.
COMPONENT = textwrap.dedent(
    """
    import pathlib, sys, time
    home, name = pathlib.Path(sys.argv[1]), sys.argv[2]
    while True:
        if (home / f"{name}.lose-db").exists():
            print("Traceback (most recent call last):", flush=True)
            print('sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server on socket '
                  '"/x/.s.PGSQL.5432" failed: No such file or directory', flush=True)
            sys.exit(1)
        if (home / f"{name}.crash").exists():
            print("ValueError: not a database problem", flush=True)
            sys.exit(1)
        time.sleep(0.05)
    """
)
# The watchdog's loop over those components: `restart` starts what is not running (as `up` does);
# the database answers while the file db-up exists.
WATCHDOG = textwrap.dedent(
    """
    import os, pathlib, sys
    from flywheel import config, processes, watchdog
    home, component = pathlib.Path(sys.argv[1]), sys.argv[2]
    settings = config.load()
    names = ["airflow-scheduler", "airflow-triggerer"]
    def restart():
        for name in names:
            processes.spawn(settings, name, [sys.executable, "-c", component, str(home), name], dict(os.environ))
    def database_error():
        return None if (home / "db-up").exists() else "the database is down (test)"
    restart()
    watchdog.supervise(settings, names, restart, database_error, interval=0.2)
    """
)


def _until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.1)


def test_the_watchdog_restarts_only_what_lost_its_database_once_it_answers_and_stops_a_crash_loop(tmp_path, monkeypatch):
    """A real watchdog process over two stand-in components: one that lost its database is started
    again only once the database answers, and counted; one that flaps is left stopped after
    MAX_RESTARTS; one that exits for another reason is never restarted."""
    from flywheel import config, processes, watchdog

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    processes.spawn(settings, watchdog.WATCHDOG, [sys.executable, "-c", WATCHDOG, str(tmp_path), COMPONENT], env)
    log = processes.log_of(settings, watchdog.WATCHDOG)

    def pid(name: str) -> int | None:
        return processes.pid_of(settings, name)

    try:
        _until(lambda: pid("airflow-scheduler") and pid("airflow-triggerer") and "watching" in log.read_text(), "started")
        first = pid("airflow-triggerer")
        # Lost its database while the database is down: waits for it, then restarts it once.
        (tmp_path / "airflow-triggerer.lose-db").touch()
        _until(lambda: pid("airflow-triggerer") is None, "the triggerer exited")
        (tmp_path / "airflow-triggerer.lose-db").unlink()
        _until(lambda: "restarting once it answers" in log.read_text(), "the watchdog noticed")
        time.sleep(1)
        assert pid("airflow-triggerer") is None, "restarted before the database answered"
        (tmp_path / "db-up").touch()
        _until(lambda: pid("airflow-triggerer") not in (None, first), "the triggerer restarted")
        assert watchdog.watchdog_record(settings) == {"restarts": {"airflow-triggerer": 1}, "gave_up": []}

        # A crash loop on a lost database: restarted up to MAX_RESTARTS times, then left stopped.
        (tmp_path / "airflow-triggerer.lose-db").touch()
        _until(lambda: watchdog.watchdog_record(settings)["gave_up"] == ["airflow-triggerer"], "gave up")
        time.sleep(1)
        assert pid("airflow-triggerer") is None
        assert watchdog.watchdog_record(settings)["restarts"] == {"airflow-triggerer": watchdog.MAX_RESTARTS}

        # Another error is a failure to look at, not to hide: never restarted.
        scheduler = pid("airflow-scheduler")
        (tmp_path / "airflow-scheduler.crash").touch()
        _until(lambda: pid("airflow-scheduler") is None, "the scheduler exited")
        (tmp_path / "airflow-scheduler.crash").unlink()
        time.sleep(1.5)
        assert pid("airflow-scheduler") is None and scheduler is not None
        assert "airflow-scheduler" not in watchdog.watchdog_record(settings)["restarts"]
        assert "leaving it stopped" in log.read_text()
    finally:
        for name in (watchdog.WATCHDOG, "airflow-scheduler", "airflow-triggerer"):
            processes.stop(settings, name, grace=5)
