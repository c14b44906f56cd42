"""AirflowAPI's own logic against a tiny stand-in for Airflow's api-server (no Airflow running):
login, token renewal, pagination, error messages, the shapes callers read, an unreachable server.

The stand-in answers only the routes a test asks for, with the fields Airflow 3.3 sends, so the
official client really (de)serializes them: what comes back is what callers get from a real server.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from tenacity import stop_after_attempt, wait_none

from flywheel import airflow_api, config
from flywheel.airflow_api import AirflowAPI, AirflowAPIError

PASSWORD = "s3cret"


def _run(n: int) -> dict:
    day = f"2013-01-{n % 28 + 1:02d}"
    return {
        "dag_run_id": f"manual__{n:03d}", "dag_id": "flights_features", "dag_display_name": "flights_features",
        "dag_versions": [], "logical_date": f"{day}T00:00:00Z", "run_after": f"{day}T00:00:00Z",
        "run_type": "backfill", "state": "success", "conf": {"n": n},
    }  # fmt: skip


class FakeAirflow(BaseHTTPRequestHandler):
    """Airflow's api-server for one test: ``routes`` maps "METHOD path" to (status, body) or a function of the query."""

    routes: dict = {}
    tokens: list = []  # every token handed out; only the last one is valid
    seen: list = []  # (method, path, query, authorization) of every request

    def _answer(self, method: str) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query).items()}
        self.seen.append((method, url.path, query, self.headers.get("Authorization")))
        if url.path == "/auth/token":
            if body != {"username": "admin", "password": PASSWORD}:
                return self._send(401, {"detail": "Invalid credentials"})
            self.tokens.append(f"token-{len(self.tokens) + 1}")
            return self._send(201, {"access_token": self.tokens[-1]})
        if self.headers.get("Authorization") != f"Bearer {self.tokens[-1] if self.tokens else None}":
            return self._send(401, {"detail": "Invalid JWT token"})
        route = self.routes.get(f"{method} {url.path}")
        if route is None:
            return self._send(404, {"detail": f"no route {method} {url.path}"})
        status, payload = route(query, body) if callable(route) else route
        self._send(status, payload)

    def _send(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def do_PATCH(self):
        self._answer("PATCH")

    def do_PUT(self):
        self._answer("PUT")

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """(api, handler class): an AirflowAPI logged in as admin to a fresh stand-in."""
    handler = type("Handler", (FakeAirflow,), {"routes": {}, "tokens": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_AIRFLOW_PORT", str(server.server_address[1]))
    yield AirflowAPI(config.load(), password=PASSWORD), handler
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runs_pages_through_every_run_logged_in_and_returns_plain_dicts(fake):
    api, server = fake
    every = [_run(n) for n in range(150)]

    def page(query, _body):
        offset, limit = int(query["offset"]), int(query["limit"])
        return 200, {"dag_runs": every[offset : offset + limit], "total_entries": len(every)}

    server.routes["GET /api/v2/dags/flights_features/dagRuns"] = page
    runs = api.runs("flights_features", order_by="run_after", state=["success"])

    assert [r["dag_run_id"] for r in runs] == [r["dag_run_id"] for r in every]
    assert runs[0]["logical_date"] == "2013-01-01T00:00:00Z"  # ISO strings, as the REST API documents
    assert runs[1]["conf"] == {"n": 1} and runs[1]["state"] == "success" and runs[1]["run_type"] == "backfill"
    assert isinstance(runs[0], dict) and runs[0]["end_date"] is None  # every documented key is there
    calls = [
        (q["offset"], q["limit"], q["order_by"], q["state"]) for m, p, q, _ in server.seen if p.endswith("/dagRuns")
    ]
    assert calls == [("0", "100", "run_after", "success"), ("100", "100", "run_after", "success")]
    assert server.tokens == ["token-1"]  # one login for every call


def test_an_expired_token_is_renewed_once(fake):
    api, server = fake
    server.routes["GET /api/v2/dags/flights_features/dagRuns/r1"] = (200, _run(1))
    assert api.run("flights_features", "r1")["conf"] == {"n": 1}
    server.tokens.append("token-rotated")  # the server forgets token-1, as when its JWT expires
    assert api.run("flights_features", "r1")["dag_run_id"] == "manual__001"
    assert server.tokens == ["token-1", "token-rotated", "token-3"]


def test_an_error_answer_names_the_call_and_carries_airflows_detail(fake):
    api, server = fake
    server.routes["PATCH /api/v2/dags/nope"] = (404, {"detail": "The Dag with ID: `nope` was not found"})
    with pytest.raises(AirflowAPIError, match=r"unpause nope -> 404: .*`nope` was not found") as err:
        api.unpause("nope")
    assert err.value.status == 404


def test_a_wrong_password_says_who_failed_to_log_in_where(fake):
    api, _server = fake
    api._password = "wrong"
    with pytest.raises(
        AirflowAPIError, match=rf"login as 'admin' at {api.url}/auth/token -> 401: .*Invalid credentials"
    ):
        api.dag("flights_features")


def test_a_server_that_is_down_is_named_at_once_for_a_write(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_AIRFLOW_PORT", str(_free_port()))
    api = AirflowAPI(config.load(), password=PASSWORD)
    with pytest.raises(
        AirflowAPIError, match=rf"login at {api.url}/auth/token: Airflow API unreachable.*is the stack up"
    ):
        api.trigger("flights_training", {})


def test_a_read_is_retried_while_the_server_is_down_then_named(monkeypatch, tmp_path):
    monkeypatch.setattr(airflow_api, "stop_after_delay", lambda _s: stop_after_attempt(3))
    monkeypatch.setattr(airflow_api, "wait_exponential", lambda **_kw: wait_none())
    attempts = []
    real_token = AirflowAPI.token
    monkeypatch.setattr(AirflowAPI, "token", lambda self: attempts.append(1) or real_token(self))
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_AIRFLOW_PORT", str(_free_port()))
    api = AirflowAPI(config.load(), password=PASSWORD)
    with pytest.raises(AirflowAPIError, match=rf"{api.url}/auth/token: Airflow API unreachable.*is the stack up"):
        api.runs("flights_features")
    assert len(attempts) == 3


def test_a_write_is_not_retried_when_the_connection_drops_after_login(fake, monkeypatch):
    api, server = fake
    api._config.access_token = api.token()  # logged in; then the api-server goes away mid-call
    sent = []

    def dropped(*_args, **_kwargs):
        from urllib3.exceptions import ProtocolError

        sent.append(1)
        raise ProtocolError("Connection aborted.")

    monkeypatch.setattr(api.dag_runs, "trigger_dag_run", dropped)
    with pytest.raises(AirflowAPIError, match=rf"trigger flights_training: Airflow API at {api.url} unreachable"):
        api.trigger("flights_training", {"a": 1})
    assert sent == [1]


def test_xcom_values_come_back_as_python_values_in_either_shape(fake):
    api, server = fake
    base = "GET /api/v2/dags/d/dagRuns/r/taskInstances"
    entry = {"key": "return_value", "timestamp": "2013-01-02T00:00:00Z", "logical_date": None, "run_after": "2013-01-02T00:00:00Z",
             "map_index": -1,
             "task_id": "t", "dag_id": "d", "run_id": "r", "dag_display_name": "d", "task_display_name": "t"}  # fmt: skip
    server.routes[f"{base}/t/xcomEntries/return_value"] = (200, {**entry, "value": {"rows": 3, "path": "/lake/x"}})
    server.routes[f"{base}/t/xcomEntries/as_text"] = (200, {**entry, "key": "as_text", "value": '{"rows": 3}'})
    server.routes[f"{base}/t/xcomEntries/plain"] = (200, {**entry, "key": "plain", "value": "not json"})
    assert api.xcom_value("d", "r", "t") == {"rows": 3, "path": "/lake/x"}
    assert api.xcom_value("d", "r", "t", "as_text") == {"rows": 3}
    assert api.xcom_value("d", "r", "t", "plain") == "not json"
    assert {q.get("deserialize") for _m, p, q, _a in server.seen if "xcomEntries" in p} == {"true"}


def test_task_log_is_the_text_of_the_lines_with_a_failures_exceptions(fake):
    api, server = fake
    failure = {
        "event": "Task failed with exception", "level": "error", "logger": "task", "error_detail": [
            {"exc_type": "RegistryError", "exc_value": "no version 999", "is_cause": False, "exceptions": [],
             "frames": [{"filename": "/x/task_runner.py", "lineno": 1579, "name": "run"},
                        {"filename": "/x/flywheel/registry/client.py", "lineno": 77, "name": "get_version"}]},
            {"exc_type": "OperationalError", "exc_value": "connection to server failed", "is_cause": True,
             "frames": [], "exceptions": []},
        ],
    }  # fmt: skip
    server.routes["GET /api/v2/dags/d/dagRuns/r/taskInstances/t/logs/2"] = (
        200,
        {"content": [{"event": "::group::Pre Execute", "timestamp": "2013-01-02T00:00:00Z", "level": "info"},
                     failure, {"event": "::endgroup::", "timestamp": None}],
         "continuation_token": None},
    )  # fmt: skip
    assert api.task_log("d", "r", "t", 2).splitlines() == [
        "::group::Pre Execute",
        "Task failed with exception",
        "  RegistryError: no version 999 (at /x/flywheel/registry/client.py:77)",
        "  OperationalError: connection to server failed",
        "::endgroup::",
    ]
    (query,) = [q for _m, p, q, _a in server.seen if p.endswith("/logs/2")]
    assert query["full_content"] == "true"


def test_task_log_of_a_try_that_does_not_exist_is_an_error_with_airflows_answer(fake):
    api, server = fake
    server.routes["GET /api/v2/dags/d/dagRuns/r/taskInstances/t/logs/9"] = (404, {"detail": "TaskInstance not found"})
    with pytest.raises(AirflowAPIError, match=r"GET log of d/r/t try 9 -> 404: .*TaskInstance not found") as err:
        api.task_log("d", "r", "t", 9)
    assert err.value.status == 404


def test_log_text_nests_an_exception_groups_members_and_keeps_plain_lines():
    group = {"exc_type": "ExceptionGroup", "exc_value": "2 failed", "frames": [], "exceptions": [
        {"exc_type": "ValueError", "exc_value": "a", "frames": [], "exceptions": []},
        {"exc_type": "KeyError", "exc_value": "'b'", "frames": [], "exceptions": []},
    ]}  # fmt: skip
    text = airflow_api._log_text([{"event": "boom", "error_detail": [group]}, "a plain line"])
    assert text.splitlines() == [
        "boom",
        "  ExceptionGroup: 2 failed",
        "    ValueError: a",
        "    KeyError: 'b'",
        "a plain line",
    ]
    assert airflow_api._log_text([]) == ""
