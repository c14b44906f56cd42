"""The flywheel plugin inside Airflow's real FastAPI app: auth on every route, real pages, no traversal."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
DAY = "2013-01-05"
VALIDATION_ID = f"ValidationResultIdentifier::flights_landing/{DAY}-abcd1234/20261128T120000.000000Z/flywheel-flights"
PASSWORD = "s3cret-test-pw"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A throw-away FLYWHEEL_HOME with a small lake, and Airflow's simple auth manager with one admin."""
    home = tmp_path_factory.mktemp("plugin") / "home"
    passwords = home / "airflow" / "passwords.json"
    passwords.parent.mkdir(parents=True)
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    values = {
        "FLYWHEEL_HOME": str(home),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret-for-the-plugin-tests-" + "x" * 40,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    os.environ.pop("FLYWHEEL_LAKE", None)
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)
    _write_lake(home)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _write_lake(home: Path) -> None:
    from flywheel import config, lake
    from flywheel.drift import daily_log
    from flywheel.registry import history

    settings = config.load()
    landed = lake.partition_path("landing", "flights", DAY, settings.lake)
    landed.mkdir(parents=True)
    (landed / "_manifest.json").write_text(json.dumps({"source": "test"}))
    summary = {
        "gate": "landing", "ds": DAY, "success": True, "failures": [],
        "expectations": {"evaluated": 3, "successful": 3, "failed": 0},
        "suites": {"flights_landing": {"success": True, "validation_results": [VALIDATION_ID]}},
    }  # fmt: skip
    (landed / "_validation.json").write_text(json.dumps(summary))
    page = (
        settings.data_docs_dir
        / "validations/flights_landing"
        / f"{DAY}-abcd1234/20261128T120000.000000Z/flywheel-flights.html"
    )
    page.parent.mkdir(parents=True)
    page.write_text("<html><link href='../../../../static/styles/docs.css' rel='stylesheet'>landing docs</html>")
    css = settings.data_docs_dir / "static/styles/docs.css"
    css.parent.mkdir(parents=True)
    css.write_text("body { color: black; }")
    report = lake.partition_path("reports", "monitoring", DAY, settings.lake)
    report.mkdir(parents=True)
    (report / "report.html").write_text("<html>evidently report of the day</html>")
    row = {
        "ds": DAY, "champion_version": 1, "drift_share": 0.4, "drifted_features": "temp", "n_drifted": 1,
        "prediction_drift": 0.5, "roc_auc": 0.61, "champion_holdout_auc": 0.63, "signal": True, "decision": "drift",
        "streak": 2, "report_path": str(report / "report.html"), "quality_ds": DAY, "fired": "drift_share",
        "mlflow_run_id": "mon1",
    }  # fmt: skip
    lake.write_frame(daily_log.row_frame(row), "monitoring", "daily", DAY, settings.lake)
    history.append_record(
        settings,
        {
            "as_of": "2013-01-04", "model": "flights_delay", "version": 1, "decision": "promoted", "source": "training",
            "reason": "promoted: first model", "metrics": {"challenger": {"roc_auc": 0.63}, "champion": {}},
            "run": {"mlflow_run_id": "run1"},
        },
    )  # fmt: skip
    # Secrets in the home that no route may serve.
    (home / "airflow" / "jwt_secret").write_text("secret")
    (settings.lake / "outside.html").symlink_to(home / "airflow" / "passwords.json")


def _add_run(dag_id: str, run_id: str, logical_date: dt.datetime | None, conf: dict, xcoms: dict) -> None:
    """A DagRun (and XComs of its tasks) in Airflow's DB, as the scheduler would have left them."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        run = DagRun(
            dag_id=dag_id, run_id=run_id, logical_date=logical_date, run_type="manual", conf=conf, state="success"
        )
        session.add(run)
        session.flush()
        for task_id, value in xcoms.items():
            session.execute(
                TaskInstance.__table__.insert().values(
                    id=uuid.uuid4(), dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=-1,
                    try_number=1, state="success", pool="default_pool", pool_slots=1, priority_weight=1,
                    max_tries=0, hostname="", unixname="", queue="default", executor_config={}, custom_operator_name="",
                )
            )  # fmt: skip
            session.add(XComModel(dag_run_id=run.id, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1,
                                  key="return_value", value=json.dumps(value)))  # fmt: skip


@pytest.fixture(scope="module")
def client(env):
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    purge_cached_app()
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def auth(client) -> dict[str, str]:
    response = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _plugin_paths(client) -> list[str]:
    """Every route of the mounted plugin app, placeholders filled, so no route can be forgotten."""
    from starlette.routing import Mount

    mount = next(r for r in client.app.routes if isinstance(r, Mount) and r.path == "/flywheel")
    filled = {"{dag_id}": "flights_features", "{run_id}": "r1", "{task_id}": "land", "{root}": "lake"}
    paths = []
    for route in mount.app.routes:
        if not hasattr(route, "methods") or route.path.startswith(("/docs", "/redoc", "/openapi")):
            continue
        path = route.path.replace("{path:path}", "reports/monitoring/ds=2013-01-05/report.html")
        for key, value in filled.items():
            path = path.replace(key, value)
        paths.append("/flywheel" + path)
    return paths


def test_anonymous_gets_401_on_every_route(client):
    paths = _plugin_paths(client)
    assert len(paths) >= 7, paths
    for path in paths:
        assert client.get(path).status_code == 401, path
    assert client.get("/flywheel/files/home/gx/data_docs/static/styles/docs.css").status_code == 401
    assert client.get("/flywheel/model-health", headers={"Authorization": "Bearer not-a-token"}).status_code in (
        401,
        403,
    )


def test_model_health_page_and_json(client, auth):
    page = client.get("/flywheel/model-health", headers=auth)
    assert page.status_code == 200
    assert "Champion timeline" in page.text and "promoted: first model" in page.text
    assert "/flywheel/static/plotly.min.js" in page.text and "cdn" not in page.text.lower()
    assert "/flywheel/files/lake/reports/monitoring/ds=2013-01-05/report.html" in page.text
    assert client.get("/flywheel/static/plotly.min.js", headers=auth).text.startswith("/**")
    champions = client.get("/flywheel/api/champions", headers=auth).json()["champions"]
    assert [(c["version"], c["decision"], c["mlflow_run_url"]) for c in champions] == [
        (1, "promoted", "/flywheel/mlflow/#/runs/run1")
    ]
    monitoring = client.get("/flywheel/api/monitoring", headers=auth).json()
    assert [(d["ds"], d["decision"], d["quality_threshold"]) for d in monitoring["days"]] == [(DAY, "drift", 0.58)]


def test_files_served_and_traversal_refused(client, auth, env):
    report = client.get("/flywheel/files/lake/reports/monitoring/ds=2013-01-05/report.html", headers=auth)
    assert report.status_code == 200 and "evidently report" in report.text
    docs = "/flywheel/files/home/gx/data_docs/validations/flights_landing/2013-01-05-abcd1234/20261128T120000.000000Z"
    assert "landing docs" in client.get(f"{docs}/flywheel-flights.html", headers=auth).text
    # The page's relative stylesheet resolves to a served file.
    assert client.get(f"{docs}/../../../../static/styles/docs.css", headers=auth).status_code == 200
    for bad in (
        "/flywheel/files/home/airflow/passwords.json",
        "/flywheel/files/home/airflow/jwt_secret",
        "/flywheel/files/lake/%2e%2e/airflow/passwords.json",
        "/flywheel/files/lake/..%2f..%2fetc/passwd",
        "/flywheel/files/lake/%2Fetc%2Fpasswd",
        "/flywheel/files/lake/outside.html",
        "/flywheel/files/etc/passwd",
        "/flywheel/files/lake/monitoring/daily/ds=2013-01-05/part-00000.parquet",
    ):
        response = client.get(bad, headers=auth)
        assert response.status_code in (403, 404), (bad, response.status_code)
        assert PASSWORD not in response.text


def test_task_evidence(client, auth):
    _add_run("flights_features", "range1", None, {"from_ds": DAY, "to_ds": DAY}, {})
    page = client.get("/flywheel/evidence/flights_features/range1/validate_landing", headers=auth)
    assert page.status_code == 200
    assert "/flywheel/files/home/gx/data_docs/validations/flights_landing/" in page.text
    assert "landing gate summary: passed" in page.text
    features = client.get("/flywheel/evidence/flights_features/range1/validate_features", headers=auth).text
    assert "not written yet" in features
    assert (
        "no evidence for this task"
        in client.get("/flywheel/evidence/flights_features/range1/wait_for_history", headers=auth).text
    )
    assert client.get("/flywheel/evidence/flights_features/nope/land", headers=auth).status_code == 404

    _add_run("flights_monitoring", "m1", dt.datetime(2013, 1, 5, tzinfo=dt.UTC), {}, {})
    monitor = client.get("/flywheel/evidence/flights_monitoring/m1/branch_on_drift", headers=auth).text
    assert "/flywheel/files/lake/reports/monitoring/ds=2013-01-05/report.html" in monitor

    trained = {"run_id": "abc", "experiment_id": "7", "model_name": "flights_delay", "model_version": 3, "as_of": DAY}
    _add_run("flights_training", "t1", None, {}, {"train_and_gate.train_challenger": trained})
    training = client.get(
        "/flywheel/evidence/flights_training/t1/train_and_gate.evaluate_challenger", headers=auth
    ).text
    assert "/flywheel/mlflow/#/experiments/7/runs/abc" in training
    assert "/flywheel/mlflow/#/models/flights_delay/versions/3" in training
    whole = client.get("/flywheel/evidence/flights_features/range1", headers=auth)
    assert whole.status_code == 200 and "ds=2013-01-05: landing" in whole.text


def test_airflow_cli_lists_the_plugin(env):
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "plugins", "--output", "json"], check=True, capture_output=True, text=True, env=os.environ
    ).stdout
    plugins = {p["name"]: p for p in json.loads(out[out.index("[") :])}
    assert "flywheel" in plugins
    assert "Model health" in json.dumps(plugins["flywheel"])


def test_the_mlflow_proxy_is_read_only_and_never_forwards_the_airflow_login(client, auth, monkeypatch):
    """/flywheel/mlflow/... reaches the stack's MLflow server (here a small real HTTP server on its
    port that records what it receives): GETs and search POSTs pass, without the Airflow cookie or
    token; writes and cross-origin posts are refused before anything is sent."""
    import http.server
    import socket
    import threading

    received: list[dict] = []

    class Upstream(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                             "body": self.rfile.read(length).decode()})  # fmt: skip
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Set-Cookie", "mlflow=1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("FLYWHEEL_MLFLOW_PORT", str(port))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        client.cookies.set("_token", "the-airflow-session")
        page = client.get("/flywheel/mlflow/ajax-api/2.0/mlflow/experiments/get?experiment_id=1", headers=auth)
        assert page.status_code == 200 and page.json() == {"ok": True}
        assert "mlflow=1" not in page.headers.get("set-cookie", "")  # MLflow sets no cookie on Airflow's origin
        search = client.post("/flywheel/mlflow/ajax-api/2.0/mlflow/runs/search", headers=auth, json={"max_results": 1})
        assert search.status_code == 200
        assert [(r["method"], r["path"]) for r in received] == [
            ("GET", "/flywheel/mlflow/ajax-api/2.0/mlflow/experiments/get?experiment_id=1"),
            ("POST", "/flywheel/mlflow/ajax-api/2.0/mlflow/runs/search"),
        ]
        assert json.loads(received[1]["body"]) == {"max_results": 1}
        for request in received:
            names = {k.lower() for k in request["headers"]}
            assert not names & {"cookie", "authorization"}, request["headers"]
        # Writes (moving an alias, deleting a version) and cross-origin searches never reach MLflow.
        alias = client.post("/flywheel/mlflow/ajax-api/2.0/mlflow/registered-models/alias", headers=auth, json={})
        assert alias.status_code == 403 and "read-only" in alias.text
        assert client.delete("/flywheel/mlflow/ajax-api/2.0/mlflow/registered-models/delete", headers=auth).status_code == 405
        foreign = client.post(
            "/flywheel/mlflow/ajax-api/2.0/mlflow/runs/search", headers={**auth, "Origin": "http://evil.example"}, json={}
        )
        assert foreign.status_code == 403
        assert len(received) == 2
        assert client.post("/flywheel/mlflow/ajax-api/2.0/mlflow/runs/search", json={}).status_code in (401, 403)
    finally:
        client.cookies.clear()
        server.shutdown()
