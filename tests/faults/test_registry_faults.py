"""The registry and training under faults: real child processes, real signals, one MLflow store.

The module's MLflow store is a PostgreSQL database on the suite's embedded server (as on the
laptop and cluster profiles), so the registry lock is the advisory lock in it. Each child process
runs the same code a task runs (``promote_or_reject``, ``train``), with failpoints armed in its
environment (:mod:`flywheel.faults`); no Airflow scheduler.

- A promotion SIGKILLed between moving the ``champion`` alias and writing the history. How the
  rerun repairs it: every registry change is a journal entry (:mod:`flywheel.registry.journal`),
  written to the history as *pending* before the alias moves and confirmed after. The killed
  promotion leaves the alias moved and a pending record that :func:`read_history` does not show;
  the next holder of the registry lock (here the rerun of the same promotion) applies the pending
  record again (idempotent: the alias is already there; tags and the challenger alias are
  finished) and confirms it, before deciding anything. The rerun then finds its decision recorded
  and returns it: the history and the aliases agree, and nothing was decided twice.
- Two promotions at once, in two processes that share only the lake and MLflow (each has its own
  FLYWHEEL_HOME, as on two hosts); the first is held inside the lock (paused at the failpoint)
  while the second starts: the advisory lock makes the second wait, so each decision is made
  against the champion current when it held the lock (the second sees the first's champion and
  is rejected as stale), and both are in the history in that order.
- The MLflow server stopped while a challenger trains (paused at the failpoint
  ``training.register``, after its run is logged): the training fails after MLflow's own HTTP
  retries with MlflowUnreachable naming the URL, nothing is registered; once the server is back a
  rerun of the task (same Airflow identity) marks the unfinished run abandoned and registers
  exactly one version, and a further retry reuses it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel import config, database, faults, processes
from flywheel.registry import history

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "tests" / "unit"
sys.path.insert(0, str(UNIT))  # the suite's MLflow helpers (tests/unit/mlflow_store.py)

from mlflow_store import features_frame, features_lake, register, tiny_pipeline  # noqa: E402

AS_OF = "2013-01-16"
TRAIN_MODEL = "faults_training"
TRAIN_ATTEMPT = ["flights_retraining", "asset_triggered__2013-01-16T00:00:00+00:00", "train_and_gate.train_challenger"]

# What a child runs: one promotion, or one or more tries of a training task (argv[1] is a JSON spec).
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from flywheel import faults
    spec = json.loads(sys.argv[1])
    home = Path(os.environ["FLYWHEEL_HOME"])
    pause, real = spec.get("pause"), faults.failpoint
    def failpoint(name):  # the failpoint `pause` waits until the test writes <marker>.release
        if name != pause:
            return real(name)
        marker = faults.marker(home, name, os.getpid())
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("")
        while not marker.with_suffix(".release").exists():
            time.sleep(0.02)
    faults.failpoint = failpoint
    if spec["op"] == "promote":
        from flywheel.registry import promotion
        from flywheel.registry.client import connect
        from flywheel import config
        connect(config.load())  # MLflow imported and connected before the clock starts
        if spec.get("started"):
            Path(spec["started"]).write_text("")
        started = time.time()
        record = promotion.promote_or_reject(*spec["args"], context=spec["context"])
        print(json.dumps({"record": record, "started": started, "ended": time.time()}))
    else:
        import mlflow_store
        from flywheel.training import model, train
        from flywheel.training.registration import Attempt, MlflowUnreachable
        model.permutation_importance_figure = mlflow_store.cheap_importance  # not what this test is about
        results = []
        for try_number in spec["tries"]:
            try:
                results.append(train.train(spec["as_of"], attempt=Attempt(*spec["attempt"], try_number)))
            except MlflowUnreachable as exc:
                print(f"MlflowUnreachable: {exc}", file=sys.stderr)
                sys.exit(3)
        print(json.dumps(results))
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One MLflow store for the module: a database on the suite's PostgreSQL, the experiment, v1..v4."""
    import mlflow

    name = f"flywheel_faults_registry_{os.getpid()}"
    server = config.load()  # the suite's embedded PostgreSQL (tests/conftest.py)
    database.ensure_databases(server, [name])
    home = tmp_path_factory.mktemp("faults") / "home"
    env = {
        "FLYWHEEL_HOME": str(home),
        "MLFLOW_TRACKING_URI": config.with_database(server.database_url, name, "postgresql"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(UNIT)]),
        "FLYWHEEL_PROMOTION_FLOOR": "0.6",
        "FLYWHEEL_PROMOTION_MARGIN": "0.002",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = config.load()
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mlflow.set_registry_uri(settings.mlflow_tracking_uri)
        mlflow.MlflowClient().create_experiment(
            settings.mlflow_experiment, artifact_location=settings.experiment_artifact_location()
        )
        frame = features_frame("2013-02-25", rows=80)
        versions = [register(settings, tiny_pipeline(frame, c=c)) for c in (1.0, 2.0, 3.0, 4.0)]
        yield {"settings": settings, "env": {**os.environ}, "versions": versions, "db": name}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        database.drop_databases(server, [name])


def _child(store: dict[str, Any], spec: dict[str, Any], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        env={**store["env"], **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> Any:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"child exited {proc.returncode}: {err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child exited {proc.returncode} before {path.name}: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, f"no {path} within {timeout}s"
        time.sleep(0.05)


def _metrics(auc: float) -> dict[str, float]:
    return {"roc_auc": auc, "pr_auc": 0.4}


def _promote(version: int, auc: float, champion: int | None, champion_auc: float | None) -> dict[str, Any]:
    return {
        "op": "promote",
        "args": [version, _metrics(auc), _metrics(champion_auc) if champion else None, champion],
        "context": {"as_of": "2013-03-01", "source": "retraining", "dag_id": "flights_retraining"},
    }


def _aliases(settings: config.Settings, model: str | None = None) -> dict[str, int]:
    from mlflow.exceptions import MlflowException

    from flywheel.registry.client import connect

    try:
        found = connect(settings).get_registered_model(model or settings.model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {k: int(v) for k, v in found.aliases.items()}


def _assert_history_agrees_with_aliases(settings: config.Settings) -> list[dict[str, Any]]:
    """The completed history chains (each decision starts from the previous one's champion) and ends
    at the alias; nothing is left pending."""
    records = history.read_history(settings)
    for earlier, later in zip(records, records[1:], strict=False):
        assert later["champion_before"] == earlier["champion_after"], (earlier, later)
    assert records[-1]["champion_after"] == _aliases(settings).get("champion")
    assert history.pending(settings) == []
    return records


def test_a_promotion_killed_after_moving_the_alias_is_completed_by_its_rerun(store: dict[str, Any]) -> None:
    settings = store["settings"]
    v1, v2, *_ = store["versions"]
    from flywheel.registry import promotion

    promotion.promote_or_reject(v1, _metrics(0.70), None, None, settings, {"as_of": "2013-03-01"})
    from flywheel.registry.client import connect

    connect(settings).set_registered_model_alias(settings.model_name, "challenger", str(v2))  # as training does
    spec = _promote(v2, 0.75, v1, 0.70)
    point = "registry.promote.alias_moved"
    killed = _child(store, spec, FLYWHEEL_FAILPOINTS=f"{point}=hang")
    _wait_for(faults.marker(settings.home, point, killed.pid), killed)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    assert killed.returncode == -signal.SIGKILL

    # One champion (the alias moved), the history still says v1 and holds v2's promotion as pending.
    assert _aliases(settings) == {"champion": v2, "challenger": v2}
    assert history.read_history(settings)[-1]["champion_after"] == v1
    assert [(r["version"], r["decision"]) for r in history.pending(settings)] == [(v2, "promoted")]

    rerun = _finish(_child(store, spec))["record"]
    assert (rerun["version"], rerun["decision"], rerun["champion_before"], rerun["champion_after"]) == (
        v2,
        "promoted",
        v1,
        v2,
    )
    records = _assert_history_agrees_with_aliases(settings)
    assert _aliases(settings) == {"champion": v2}  # the rerun finished the job: no challenger on the champion
    assert [(r["version"], r["decision"]) for r in records] == [(v1, "promoted"), (v2, "promoted")]
    tags = connect(settings).get_model_version(settings.model_name, str(v2)).tags
    assert (tags["promotion.decision"], tags["promotion.champion_before"]) == ("promoted", f"v{v1}")


def test_two_promotions_at_once_are_decided_one_after_the_other(store: dict[str, Any], tmp_path: Path) -> None:
    """The first promotion is held inside the lock (paused after moving the alias) while the second starts:
    the second waits for the lock, then decides against the first's champion."""
    settings = store["settings"]
    _, v2, v3, v4 = store["versions"]
    if _aliases(settings).get("champion") != v2:  # run alone, without the test above
        from flywheel.registry import promotion

        promotion.promote_or_reject(v2, _metrics(0.75), None, None, settings, {"as_of": "2013-03-01"})
    before = len(history.read_history(settings))
    point = "registry.promote.alias_moved"

    def worker(version: int, auc: float, **spec: Any) -> subprocess.Popen[str]:
        # Two workers that share only the lake and MLflow (as on two hosts): their own FLYWHEEL_HOME each.
        home = tmp_path / f"worker-{version}"
        env = {"FLYWHEEL_HOME": str(home), "FLYWHEEL_LAKE": str(settings.lake)}
        return _child(store, {**_promote(version, auc, v2, 0.75), **spec}, **env)  # both evaluated against v2

    first = worker(v3, 0.80, pause=point)
    paused = faults.marker(tmp_path / f"worker-{v3}", point, first.pid)
    _wait_for(paused, first)
    second = worker(v4, 0.81, started=str(tmp_path / "second-started"))
    _wait_for(tmp_path / "second-started", second)
    time.sleep(2)  # the second promotion is waiting for the lock meanwhile
    released = time.time()
    paused.with_suffix(".release").write_text("")
    results = [_finish(first), _finish(second)]
    assert results[1]["started"] < results[0]["ended"]  # at once
    assert results[1]["ended"] > released  # the second could not decide while the first held the lock

    records = _assert_history_agrees_with_aliases(settings)[before:]
    assert [(r["version"], r["decision"], r["champion_before"], r["champion_after"]) for r in records] == [
        (v3, "promoted", v2, v3),
        (v4, "rejected", v3, v3),
    ]
    assert records[1]["reason"] == f"rejected: champion changed during evaluation (v{v2} -> v{v3}); rerun the evaluation"
    assert _aliases(settings) == {"champion": v3}


@pytest.fixture
def mlflow_server(store: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A real ``mlflow server`` on the module's store, serving artifacts, on a free port; restartable."""
    settings = store["settings"]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    artifacts = settings.home / "served-artifacts"
    argv = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--serve-artifacts", "--artifacts-destination", artifacts.as_uri(),
    ]  # fmt: skip
    env = {
        **store["env"],
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_BACKEND_STORE_URI": settings.mlflow_tracking_uri,
    }

    def start() -> None:
        processes.spawn(settings, "mlflow-faults", argv, env, port=port)
        processes.wait_http(f"{url}/health", 90, "MLflow server", processes.log_of(settings, "mlflow-faults"))

    def stop() -> None:
        processes.stop(settings, "mlflow-faults", grace=10)

    start()
    try:
        yield {"url": url, "start": start, "stop": stop}
    finally:
        stop()


def test_mlflow_server_stopped_during_training(store: dict[str, Any], mlflow_server: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    settings = store["settings"]
    features_lake(settings.lake, "2013-01-05", 12, rows=200)
    url = mlflow_server["url"]
    env = {
        "MLFLOW_TRACKING_URI": url,
        "FLYWHEEL_MLFLOW_EXPERIMENT": "faults_training",  # created through the server: artifacts over HTTP
        "FLYWHEEL_MODEL_NAME": TRAIN_MODEL,
        "FLYWHEEL_TRAIN_WINDOW_DAYS": "12",
        "FLYWHEEL_HOLDOUT_DAYS": "3",
        "FLYWHEEL_TUNING_TRIALS": "1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    spec = {"op": "train", "as_of": AS_OF, "attempt": TRAIN_ATTEMPT, "tries": [1], "pause": "training.register"}
    first = _child(store, spec, **env)
    marker = faults.marker(settings.home, "training.register", first.pid)
    _wait_for(marker, first, timeout=120)
    mlflow_server["stop"]()
    released = time.monotonic()
    marker.with_suffix(".release").write_text("")
    _, err = first.communicate(timeout=60)
    assert first.returncode == 3, err[-3000:]
    assert time.monotonic() - released < 30  # MLflow's retries, kept short here
    assert f"MlflowUnreachable: MLflow at {url} could not be reached while registering the challenger" in err

    mlflow_server["start"]()
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    assert client.search_model_versions(f"name = '{TRAIN_MODEL}'") == []  # nothing half-registered
    assert _aliases(settings, TRAIN_MODEL) == {}
    experiment = client.get_experiment_by_name("faults_training")
    [run] = client.search_runs([experiment.experiment_id], filter_string="tags.`flywheel.kind` = 'training'")
    assert run.info.status == "RUNNING"  # the server was gone when the run should have ended
    assert {"feature_importance.png", "training_summary.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}

    # The task's next try (and one more retry after it registered, in the same process): one version.
    second, third = _finish(_child(store, {**spec, "tries": [2, 3], "pause": None}, **env), timeout=120)
    assert third == {**second, "reused": True}
    [version] = client.search_model_versions(f"name = '{TRAIN_MODEL}'")
    assert str(version.version) == second["model_version"] and version.run_id == second["run_id"]
    assert version.tags["flywheel.airflow_try_number"] == "2" and version.tags["flywheel.airflow_run_id"] == TRAIN_ATTEMPT[1]
    assert _aliases(settings, TRAIN_MODEL) == {"challenger": int(version.version)}
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`flywheel.kind` = 'training'")
    status = {r.data.tags["flywheel.airflow_try_number"]: r.info.status for r in runs}
    assert status == {"1": "FAILED", "2": "FINISHED"}
    abandoned = next(r for r in runs if r.info.run_id == run.info.run_id)
    assert abandoned.data.tags["flywheel.abandoned"].endswith("superseded by try 2")
    served = {a.path for a in client.list_artifacts(second["run_id"])}
    assert {"feature_importance.png", "training_summary.json"} <= served

