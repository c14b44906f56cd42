"""The closed loop through the real Airflow scheduler (LocalExecutor, api-server, dag-processor).

Small real data (January 2013): a champion is trained on 8 days, two later days are scored, then
only ``flights_monitoring`` runs through the scheduler. A clean day must not start a retraining;
a day with injected drift must make the scheduler itself create a ``flights_retraining`` run
(from the ``drift`` asset event) that finishes with a decision in the promotion history.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from flywheel import config, features, lake
from tests.services import fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(10)]
CHAMPION_AS_OF = DAYS[7]
CLEAN_DAY, DRIFT_DAY = DAYS[8], DAYS[9]
AIRFLOW_PORT = 18080

# Settings of the whole run (this process and the stack): small windows, one trial; the policy
# calls drift on data drift alone (quality and prediction drift switched off) after a single day.
ENV = {
    "FLYWHEEL_HOLDOUT_DAYS": "2",
    "FLYWHEEL_TRAIN_WINDOW_DAYS": "10",
    "FLYWHEEL_TUNING_TRIALS": "1",
    "FLYWHEEL_DRIFT_SHARE": "0.8",
    "FLYWHEEL_DRIFT_CONSECUTIVE_DAYS": "1",
    "FLYWHEEL_QUALITY_DROP": "0.99",
    "FLYWHEEL_PREDICTION_DRIFT": "1000",
    "FLYWHEEL_RETRAIN_COOLDOWN_DAYS": "1",
}


def _inject_drift(day: dt.date, settings: config.Settings) -> None:
    """Move almost every model input to where training never saw it, within the valid ranges
    (the training-set gate rightly refuses out-of-range values, and the retraining trains on this day)."""
    import numpy as np

    frame = lake.read_frame("features", features.DATASET, day, settings.lake)
    manifest = features.read_manifest(lake.partition_path("features", features.DATASET, day, settings.lake))

    def f(col: str):
        return frame[col].astype("float64")

    frame["dep_hour"] = (frame["dep_hour"] + 12) % 24
    frame["sched_dep_minutes"] = (frame["sched_dep_minutes"] + 720) % 1440
    frame["sched_arr_minutes"] = (frame["sched_arr_minutes"] + 720) % 1440
    frame["distance"] = np.minimum(f("distance") * 2, 5900)
    for col, value in {"temp": f("temp") + 45, "dewp": f("dewp") + 45, "humid": 100 - f("humid"),
                       "wind_dir": (f("wind_dir") + 180) % 360, "wind_speed": f("wind_speed") * 3,
                       "wind_gust": f("wind_gust") * 3, "precip": f("precip") + 0.5,
                       "pressure": f("pressure") + 30, "visib": 10 - f("visib"),
                       "plane_age": np.minimum(f("plane_age") + 30, 79), "plane_seats": f("plane_seats") * 2,
                       "plane_engines": f("plane_engines") + 2, "dest_lat": f("dest_lat") + 15,
                       "dest_lon": f("dest_lon") + 30, "dest_alt": f("dest_alt") + 3000, "dest_tz": f("dest_tz") + 3}.items():
        frame[col] = value.astype(frame[col].dtype) if frame[col].dtype.kind in "iu" else value
    for col in features.HISTORY_FEATURES:
        if "_delay_rate_" in col:
            frame[col] = 1 - f(col)
        elif "_mean_arr_delay_" in col:
            frame[col] = f(col) + 90
        else:
            frame[col] = frame[col] * 5 + 50
    lake.write_frame(frame, "features", features.DATASET, day, settings.lake, extra_files={features.MANIFEST: manifest})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Lake and registry state built in-process with the same functions the DAGs run."""
    from flywheel import landing
    from flywheel.registry import promotion
    from flywheel.scoring import score_partition
    from flywheel.training import data, train
    from flywheel.validation import validate_features, validate_landing
    from spark_jobs import build_features

    root = tmp_path_factory.mktemp("e2e")
    patch = pytest.MonkeyPatch()
    patch.setenv("FLYWHEEL_HOME", str(root / "home"))
    # Its own Airflow and MLflow databases on the session's PostgreSQL: the stack starts from empty ones.
    patch.setenv("FLYWHEEL_AIRFLOW_DATABASE", "airflow_e2e")
    patch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", fresh_database("airflow_e2e", "postgresql+psycopg2"))
    patch.setenv("MLFLOW_TRACKING_URI", fresh_database("mlflow_e2e"))
    patch.setenv("FLYWHEEL_AIRFLOW_PORT", str(AIRFLOW_PORT))
    patch.delenv("FLYWHEEL_SOURCE", raising=False)
    for key, value in ENV.items():
        patch.setenv(key, value)
    settings = config.load()
    for day in DAYS:
        landing.land(day)
        validate_landing(day)
        build_features.run(day, output_dataset=features.CANDIDATE_DATASET)
        validate_features(day)
    result = train.train(CHAMPION_AS_OF, window_days=8, n_trials=1)
    version = int(result["model_version"])
    holdout = data.assemble(CHAMPION_AS_OF, 8, settings).split(settings.holdout_days).holdout
    challenger, champion, champion_version = promotion.evaluate_challenger(version, holdout, settings)
    record = promotion.promote_or_reject(
        version, challenger, champion, champion_version, settings, {"as_of": CHAMPION_AS_OF.isoformat()}
    )
    assert record["decision"] == "promoted", record["reason"]
    _inject_drift(DRIFT_DAY, settings)
    for day in (CLEAN_DAY, DRIFT_DAY):
        score_partition(day, settings)
    yield settings
    patch.undo()


@pytest.fixture(scope="module")
def airflow_stack(prepared):
    from flywheel import stack

    try:
        stack.up(prepared, spark_connect=False, mlflow_ui=False)
        yield prepared
    finally:
        stack.down(prepared)


def _retraining_runs() -> list[dict]:
    from flywheel.airflow_api import AirflowAPI

    return AirflowAPI().runs("flights_retraining")


def _listening_addresses(settings) -> set[tuple[str, int]]:
    """(ip, port) of every TCP listener of the stack's processes and their children."""
    import psutil

    from flywheel import stack

    out = set()
    for pid in filter(None, stack.status(settings).values()):
        if pid < 0:
            continue
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                conns = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return out


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
    listeners = _listening_addresses(airflow_stack)
    assert listeners and all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip, _ in listeners), listeners
    login_page = httpx.get(f"{url}/auth/login")
    assert login_page.status_code == 200 and "<html" in login_page.text.lower()


def test_drift_starts_retraining_through_the_scheduler(airflow_stack):
    from flywheel import demo
    from flywheel.drift.monitor import read_monitoring_history
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
