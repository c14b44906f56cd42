"""The cluster profile, run for real: Airflow's CeleryExecutor with two workers on Redis, a Spark
standalone master and worker behind Spark Connect, an MLflow tracking server with served artifacts,
metadata on the PostgreSQL server at 127.0.0.1:5432, every part a separate process on loopback.

One stack for the module (its fixture stops it when the module ends). A short story runs through
the scheduler: eleven feature days (one range run, on the Spark cluster), a first champion
(flights_training; the features' event starts a scoring run that skips, no champion yet), scoring of a
day with injected drift (its event starts the monitoring run), and the retraining the
scheduler starts by itself from the drift event. Then the checks, made from the outside: task
instances on both workers' host names, the Spark application in the master's status, the model
and runs on the MLflow server's REST API, no local MLflow store. Last, a fault: SIGKILL of the
worker running a task; the run finishes on the other worker after the retry, with the partitions
of the undisturbed run.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from tests.e2e.story import ENV as STORY_ENV
from tests.e2e.story import inject_drift
from tests.services import asset_triggered_run, feature_rows_digest, listening_addresses, require

pytestmark = [pytest.mark.cluster, pytest.mark.spark]

DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(11)]
AS_OF, DRIFT_DAY = DAYS[8], DAYS[10]  # champion on Jan 1-9; drift on Jan 11, outside the 1-day cooldown
BROKER = "redis://127.0.0.1:6379/7"
ENV = {
    **STORY_ENV,
    "FLYWHEEL_PROFILE": "cluster",
    "FLYWHEEL_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    "FLYWHEEL_AIRFLOW_DATABASE": "flywheel_cluster_airflow",
    "FLYWHEEL_MLFLOW_DATABASE": "flywheel_cluster_mlflow",
    "FLYWHEEL_CELERY_BROKER_URL": BROKER,
    "FLYWHEEL_TRAIN_WINDOW_DAYS": "9",
    # Ports of their own: a laptop stack or the e2e tier may run beside this one.
    "FLYWHEEL_AIRFLOW_PORT": "18180",
    "FLYWHEEL_MLFLOW_PORT": "18600",
    "FLYWHEEL_SPARK_CONNECT_PORT": "18002",
    "FLYWHEEL_SPARK_MASTER_PORT": "17077",
    "FLYWHEEL_SPARK_MASTER_UI_PORT": "18091",
    "FLYWHEEL_SPARK_WORKER_PORT": "17078",
    "FLYWHEEL_SPARK_WORKER_UI_PORT": "18092",
    "FLYWHEEL_SPARK_DRIVER_MEMORY": "1g",
    "FLYWHEEL_SPARK_WORKER_MEMORY": "1g",
    # A dead worker's task is declared failed (and retried) after 20 s without a heartbeat, not 5 min.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
}
# Set by tests/conftest.py for the session's embedded server; this stack derives them from ENV.
UNSET = ("MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "SPARK_REMOTE", "FLYWHEEL_SOURCE")
DAGS = ("flights_features", "flights_training", "flights_scoring", "flights_monitoring", "flights_retraining")


def _run(api, dag_id: str, conf: dict, timeout: float = 600) -> dict:
    run = api.wait_run(dag_id, api.trigger(dag_id, conf)["dag_run_id"], timeout)
    assert run["state"] == "success", f"{dag_id} {conf}: {api.task_states(dag_id, run['dag_run_id'])}"
    return run


def _partition_digests(settings, days: list[dt.date]) -> dict[str, str]:
    return {day.isoformat(): feature_rows_digest(settings, day) for day in days}


@pytest.fixture(scope="module")
def cluster():
    """The cluster stack, started from empty databases and an empty broker; stopped at the module's end."""
    require("Redis (the Celery broker)", "127.0.0.1", 6379)
    require("PostgreSQL", "127.0.0.1", 5432)
    import redis

    from flywheel import config, database, stack

    patch = pytest.MonkeyPatch()
    home = Path(__import__("tempfile").mkdtemp(prefix="flywheel-cluster-"))
    patch.setenv("FLYWHEEL_HOME", str(home))
    for key, value in ENV.items():
        patch.setenv(key, value)
    for key in UNSET:
        patch.delenv(key, raising=False)
    settings = config.load()
    database.drop_databases(settings, [settings.airflow_database, settings.mlflow_database])
    redis.Redis.from_url(BROKER).flushdb()
    try:
        stack.up(settings)
        yield settings
    finally:
        stack.down(settings)
        patch.undo()


@pytest.fixture(scope="module")
def story(cluster):
    """Features, first champion, scoring and monitoring of a drifted day, and the retraining that follows."""
    from flywheel.airflow_api import AirflowAPI

    api = AirflowAPI(cluster)
    for dag_id in DAGS:
        api.unpause(dag_id)
    runs = {}
    runs["features"] = _run(api, "flights_features", {"from_ds": DAYS[0].isoformat(), "to_ds": DAYS[-1].isoformat()})
    # Its event started a scoring run of the same days, which finds no champion yet and skips.
    first = asset_triggered_run(api, "flights_scoring", f"{DAYS[0].isoformat()}..{DAYS[-1].isoformat()}")
    assert first["state"] == "success" and api.task_states("flights_scoring", first["dag_run_id"])["score"] == "skipped"
    runs["training"] = _run(api, "flights_training", {"as_of": AS_OF.isoformat(), "window_days": 9, "tuning_trials": 1})
    inject_drift(DRIFT_DAY, cluster)
    # Scoring of the drifted day by hand (its partition key); its event starts the monitoring run.
    key = DRIFT_DAY.isoformat()
    runs["scoring"] = api.wait_run("flights_scoring", api.trigger("flights_scoring", partition_key=key)["dag_run_id"], 600)
    assert runs["scoring"]["state"] == "success", api.task_states("flights_scoring", runs["scoring"]["dag_run_id"])
    runs["monitoring"] = asset_triggered_run(api, "flights_monitoring", key)
    assert runs["monitoring"]["state"] == "success", api.task_states("flights_monitoring", runs["monitoring"]["dag_run_id"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        retraining = api.runs("flights_retraining")
        if retraining and retraining[0]["state"] in ("success", "failed"):
            break
        time.sleep(3)
    else:
        pytest.fail("the drift event started no flights_retraining run that finished within 10 minutes")
    runs["retraining"] = retraining[0]
    assert retraining[0]["run_type"] == "asset_triggered"
    assert retraining[0]["state"] == "success", api.task_states("flights_retraining", retraining[0]["dag_run_id"])
    return api, runs


@pytest.mark.timeout(1800)  # the first test pays for the stack and the story (about 6 min on 2 cores)
def test_the_story_ran_on_both_celery_workers_with_spark_tasks_on_the_spark_queue(cluster, story):
    from flywheel import cluster as parts

    api, runs = story
    instances = [
        ti for name, run in runs.items() for ti in api.instances(run["dag_id"], run["dag_run_id"])
        if ti["state"] == "success"
    ]  # fmt: skip
    hosts = {ti["hostname"] for ti in instances}
    workers = {parts.worker_hostname(name) for name in parts.worker_names(cluster)}
    assert hosts == workers, f"task instances ran on {hosts}, expected exactly the workers {workers}"
    build = [ti for ti in instances if ti["task_id"] == "build_features"]
    assert build and all(ti["queue"] == "spark" for ti in build)
    assert all(ti["queue"] == "default" for ti in instances if ti["task_id"] != "build_features")


def test_the_features_job_ran_on_the_spark_standalone_cluster(cluster, story):
    import httpx

    from flywheel import cluster as parts

    status = parts.master_status(cluster)
    assert status["url"] == cluster.spark_master_url
    assert [w["state"] for w in status["workers"]] == ["ALIVE"]
    apps = [a for a in status["activeapps"] if a["name"] == "flywheel-spark-connect"]
    assert len(apps) == 1 and apps[0]["cores"] >= 1, status["activeapps"]
    # The application's executor runs on the worker (its own JVM, not the driver's).
    worker = httpx.get(f"{status['workers'][0]['webuiaddress']}/json/", timeout=10).json()
    assert [e["appid"] for e in worker["executors"]] == [apps[0]["id"]]
    # ... and ran the job's tasks there: the executor's log under the worker's work dir says so.
    logs = list((cluster.home / "spark" / "work" / apps[0]["id"]).glob("*/stderr"))
    assert logs and any("Finished task" in log.read_text() for log in logs)


def test_models_and_runs_are_on_the_mlflow_server_and_nothing_wrote_a_local_store(cluster, story):
    import httpx

    base = cluster.mlflow_tracking_uri
    assert base.startswith("http://127.0.0.1:18600/")
    api = f"{base}/api/2.0/mlflow"
    model = httpx.get(f"{api}/registered-models/get", params={"name": cluster.model_name}, timeout=30).json()
    aliases = {a["alias"]: a["version"] for a in model["registered_model"].get("aliases", [])}
    assert "champion" in aliases
    versions = httpx.get(
        f"{api}/model-versions/search", params={"filter": f"name='{cluster.model_name}'"}, timeout=30
    ).json()["model_versions"]
    assert len(versions) == 2  # the first champion and the retraining's challenger
    experiment = httpx.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": cluster.mlflow_experiment}, timeout=30
    ).json()["experiment"]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")  # served by the server
    found = httpx.post(f"{api}/runs/search", json={"experiment_ids": [experiment["experiment_id"]]}, timeout=30).json()
    assert {r["info"]["run_name"] for r in found["runs"]} >= {f"train-{AS_OF}", f"train-{DRIFT_DAY}"}
    # The tasks reached MLflow over HTTP only: no file store, no SQLite database anywhere they run.
    for root in (cluster.home, Path.cwd(), Path(__file__).resolve().parents[2]):
        assert not list(root.rglob("mlruns")) and not list(root.rglob("mlflow.db")), root


def test_every_part_listens_on_loopback_only_and_status_shows_each(cluster, story):
    from flywheel import stack

    state = stack.status(cluster)
    assert [name for name, pid in state.items() if not pid] == [], state
    assert {"spark-master", "spark-worker-1", "airflow-worker-1", "airflow-worker-2", "mlflow"} <= set(state)
    listeners = listening_addresses(cluster)
    ports = {port for _, port in listeners}
    assert {18180, 18600, 18002, 17077, 18091, 17078, 18092} <= ports, sorted(ports)
    assert all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip, _ in listeners), sorted(listeners)


def test_a_worker_killed_during_a_task_leaves_the_run_to_finish_on_the_other_worker(cluster, story):
    from flywheel import cluster as parts
    from flywheel import processes

    api, _ = story
    days = DAYS[:3]
    before = _partition_digests(cluster, days)
    run_id = api.trigger("flights_features", {"from_ds": days[0].isoformat(), "to_ds": days[-1].isoformat()})[
        "dag_run_id"
    ]
    hosts = {parts.worker_hostname(name): name for name in parts.worker_names(cluster)}
    import signal

    def running_long_task() -> dict | None:
        for ti in api.instances("flights_features", run_id):
            if ti["state"] == "running" and ti["task_id"] in ("validate_landing", "build_features", "validate_features"):
                return ti
        return None

    deadline = time.monotonic() + 300
    victim = None
    while victim is None and time.monotonic() < deadline:
        seen = running_long_task()
        if seen is not None:
            time.sleep(1)  # inside the task, not at its start
            again = running_long_task()  # still that try of that task, still running: kill its worker now
            if again is not None and (again["task_id"], again["try_number"]) == (seen["task_id"], seen["try_number"]):
                victim = again
                continue
        time.sleep(0.5)
    assert victim is not None, "no long task of the run was seen running"
    killed = hosts[victim["hostname"]]
    # The worker and everything it started, task processes included (a machine that dies).
    assert processes.stop(cluster, killed, sig=signal.SIGKILL, grace=0)
    run = api.wait_run("flights_features", run_id, timeout=600)
    try:
        assert run["state"] == "success", api.task_states("flights_features", run_id)
        after = next(ti for ti in api.instances("flights_features", run_id) if ti["task_id"] == victim["task_id"])
        assert after["try_number"] >= 2
        assert after["hostname"] != victim["hostname"] and after["hostname"] in hosts
        assert _partition_digests(cluster, days) == before
    finally:  # the worker comes back for whatever runs after this test
        from flywheel import launch

        parts.start_workers(cluster, launch.airflow_env(cluster), str(launch.bin_dir() / "airflow"))
