"""The stack's Airflow REST API, through the official client (``apache-airflow-client``), logged in.

Every call authenticates like any other client: a JWT from ``POST /auth/token`` with the
generated ``admin`` password (:func:`flywheel.launch.admin_password`). Results come back as plain
JSON dicts (strings for dates), the shape the REST API documents. A read that cannot reach the
server (an api-server being restarted by hand) is retried with backoff for about a minute; writes
and HTTP error answers are not retried: they raise :class:`AirflowAPIError` with Airflow's answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from flywheel import config

T = TypeVar("T")
PAGE = 100  # the REST API's largest page
# (connect, read) seconds: a server that accepts and never answers must not hang the demo.
REQUEST_TIMEOUT = (5, 120)


class AirflowAPIError(RuntimeError):
    """Airflow answered an error (or could not be reached); the message says which call and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Unreachable(ConnectionError):
    """The server could not be reached (internal: retried, then raised as AirflowAPIError)."""


def _json(model: Any) -> Any:
    # Not the models' to_dict(): that keeps datetimes as objects and drops unset keys, and callers
    # compare and slice the ISO strings the REST API sends (run["logical_date"][:10]).
    return model.model_dump(mode="json", by_alias=True) if hasattr(model, "model_dump") else model


def _log_text(lines: list[Any]) -> str:
    """A try's log as text: each line's event; under an error line, its exceptions (cause chain and
    groups), one ``Type: message (at file:line)`` each, indented."""
    out: list[str] = []

    def exceptions(records: list[dict[str, Any]], depth: int) -> None:
        for exc in records:
            frames = exc.get("frames") or []
            where = f" (at {frames[-1]['filename']}:{frames[-1]['lineno']})" if frames else ""
            out.append(f"{'  ' * depth}{exc.get('exc_type')}: {exc.get('exc_value')}{where}")
            exceptions(exc.get("exceptions") or [], depth + 1)

    for line in lines:
        if not isinstance(line, dict):  # the endpoint's other shape: plain strings
            out.append(str(line))
            continue
        out.append(str(line.get("event", "")))
        exceptions(line.get("error_detail") or [], 1)
    return "\n".join(out)


class AirflowAPI:
    """A logged-in client of one Airflow API server."""

    def __init__(self, settings: config.Settings | None = None, username: str | None = None, password: str | None = None):
        from airflow_client import client

        from flywheel import launch

        self.settings = settings or config.load()
        self.url = self.settings.airflow_url
        self._username = username or launch.ADMIN_USER
        self._password = password if password is not None else launch.admin_password(self.settings)
        self._config = client.Configuration(host=self.url)
        self._api = client.ApiClient(self._config)
        self._client = client
        self.dags = client.DAGApi(self._api)
        self.dag_runs = client.DagRunApi(self._api)
        self.task_instances = client.TaskInstanceApi(self._api)
        self.backfills = client.BackfillApi(self._api)
        self.xcom = client.XComApi(self._api)
        self.assets_api = client.AssetApi(self._api)

    def token(self) -> str:
        """A fresh access token for the configured user (``POST /auth/token``)."""
        # Plain HTTP: the token endpoint belongs to the auth manager, not to the API the client is
        # generated from (its LoginApi.login is the browser's redirect to the login page).
        import httpx

        try:
            resp = httpx.post(
                f"{self.url}/auth/token", json={"username": self._username, "password": self._password}, timeout=30
            )
        except httpx.TransportError as exc:
            raise _Unreachable(f"login at {self.url}/auth/token: Airflow API unreachable: {exc}") from exc
        if resp.status_code != 201:
            raise AirflowAPIError(
                f"login as {self._username!r} at {self.url}/auth/token -> {resp.status_code}: {resp.text[:300]}",
                resp.status_code,
            )
        return resp.json()["access_token"]

    def call(self, what: str, fn: Callable[..., T], *args: Any, idempotent: bool = True, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` logged in; an expired token is renewed once. A read that could not
        reach the server is retried with backoff for about a minute (an api-server restarting); a
        write is not (it may have been applied), and neither is an HTTP error answer."""
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Unreachable) if idempotent else retry_if_exception_type(()),
                stop=stop_after_delay(60),
                wait=wait_exponential(multiplier=1, max=10),
                reraise=True,
            ):
                with attempt:
                    return self._call_once(what, fn, *args, **kwargs)
        except _Unreachable as exc:
            raise AirflowAPIError(f"{exc} (is the stack up? `make status`)") from exc
        raise AssertionError("unreachable")

    def _call_once(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from airflow_client.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        for attempt in (1, 2):
            if not self._config.access_token:
                self._config.access_token = self.token()
            try:
                return fn(*args, **kwargs)
            except ApiException as exc:
                if exc.status == 401 and attempt == 1:
                    self._config.access_token = None
                    continue
                raise AirflowAPIError(f"{what} -> {exc.status}: {(exc.body or exc.reason or '')[:1000]}", exc.status) from exc
            except TransportError as exc:
                raise _Unreachable(f"{what}: Airflow API at {self.url} unreachable: {exc}") from exc
        raise AssertionError("unreachable")

    # -- the calls Flywheel makes ---------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any]:
        return _json(self.call(f"GET dag {dag_id}", self.dags.get_dag, dag_id))

    def unpause(self, dag_id: str) -> None:
        body = self._client.DAGPatchBody(is_paused=False)
        self.call(f"unpause {dag_id}", self.dags.patch_dag, dag_id, body)

    def runs(self, dag_id: str, order_by: str = "logical_date", **filters: Any) -> list[dict[str, Any]]:
        """Every run of the DAG (paginated), oldest first by ``order_by``."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.call(
                f"GET runs of {dag_id}", self.dag_runs.get_dag_runs, dag_id,
                limit=PAGE, offset=len(out), order_by=[order_by], **filters,
            )  # fmt: skip
            out += [_json(r) for r in page.dag_runs]
            if not page.dag_runs or len(out) >= page.total_entries:
                return out

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return _json(self.call(f"GET run {dag_id}/{run_id}", self.dag_runs.get_dag_run, dag_id, run_id))

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600, poll: float = 2) -> dict[str, Any]:
        """The run once it has finished (success or failed); AirflowAPIError after ``timeout`` seconds."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise AirflowAPIError(
                    f"{dag_id} run {run_id} not finished after {timeout:.0f}s: {self.task_states(dag_id, run_id)}"
                )
            time.sleep(poll)

    def asset_graph(self) -> list[tuple[str, str, str]]:
        """Airflow's asset graph as ``(producing DAG, asset, consuming DAG)`` edges, sorted."""
        edges = set()
        page = self.call("GET assets", self.assets_api.get_assets, limit=PAGE)
        for asset in page.assets:
            for task in asset.producing_tasks or []:
                for dag in asset.scheduled_dags or []:
                    edges.add((task.dag_id, asset.name, dag.dag_id))
        return sorted(edges)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, partition_key: str | None = None) -> dict[str, Any]:
        """A manual run with ``conf``; of a partitioned (asset-driven) DAG, for ``partition_key``."""
        body = self._client.TriggerDAGRunPostBody(logical_date=None, conf=conf or {}, partition_key=partition_key)
        return _json(self.call(f"trigger {dag_id}", self.dag_runs.trigger_dag_run, dag_id, body, idempotent=False))

    def instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of one run (state, hostname, queue, try_number, ...), paginated."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.call(
                f"GET task instances of {dag_id}/{run_id}", self.task_instances.get_task_instances, dag_id, run_id,
                limit=PAGE, offset=len(out),
            )  # fmt: skip
            out += [_json(ti) for ti in page.task_instances]
            if not page.task_instances or len(out) >= page.total_entries:
                return out

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of one task instance, the current one included, by try number (each with its
        state, start_date, end_date, hostname, pid)."""
        page = self.call(
            f"GET tries of {dag_id}/{run_id}/{task_id}", self.task_instances.get_task_instance_tries,
            dag_id, run_id, task_id,
        )  # fmt: skip
        return sorted((_json(t) for t in page.task_instances), key=lambda t: t["try_number"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The log of one try, as text: one line per event, a failure's exceptions under it."""
        # The raw answer, not get_log(): the client parses each line into StructuredLogMessage, which
        # keeps only event and timestamp and drops error_detail, so a failed try's log would read
        # "Task failed with exception" without the exception. Same client, token and errors otherwise.
        from airflow_client.client.exceptions import ApiException

        def fetch(**kwargs: Any) -> Any:  # kwargs: call()'s request timeout
            resp = self.task_instances.get_log_without_preload_content(
                dag_id, run_id, task_id, try_number, full_content=True, **kwargs
            )
            if resp.status >= 400:
                raise ApiException.from_response(http_resp=resp, body=None, data=None)
            return json.loads(resp.data)

        answer = self.call(f"GET log of {dag_id}/{run_id}/{task_id} try {try_number}", fetch)
        return _log_text(answer.get("content") or [])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id -> state (``"none"`` when not scheduled yet) of one run."""
        return {ti["task_id"]: ti.get("state") or "none" for ti in self.instances(dag_id, run_id)}

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.call(
            f"GET XCom {dag_id}/{run_id}/{task_id}/{key}", self.xcom.get_xcom_entry, dag_id, task_id, run_id, key,
            deserialize=True,
        )  # fmt: skip
        # The endpoint answers one of two shapes (native or string value): a oneOf wrapper.
        value = _json(getattr(entry, "actual_instance", entry))["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def create_backfill(
        self, dag_id: str, from_date: str, to_date: str, max_active_runs: int, reprocess_behavior: str = "failed"
    ) -> dict[str, Any]:
        body = self._client.BackfillPostBody(
            dag_id=dag_id, from_date=from_date, to_date=to_date, max_active_runs=max_active_runs,
            reprocess_behavior=self._client.ReprocessBehavior(reprocess_behavior),
        )  # fmt: skip
        return _json(self.call(f"create backfill of {dag_id}", self.backfills.create_backfill, body, idempotent=False))

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return _json(self.call(f"GET backfill {backfill_id}", self.backfills.get_backfill, backfill_id))

    def backfills_of(self, dag_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.call(
                f"list backfills of {dag_id}", self.backfills.list_backfills, dag_id, limit=PAGE, offset=len(out)
            )
            out += [_json(b) for b in page.backfills]
            if not page.backfills or len(out) >= page.total_entries:
                return out

    def cancel_backfill(self, backfill_id: int) -> None:
        self.call(f"cancel backfill {backfill_id}", self.backfills.cancel_backfill, backfill_id)

    def clear_task_instances(self, dag_id: str, run_id: str) -> None:
        body = self._client.ClearTaskInstancesBody(dag_run_id=run_id, dry_run=False, only_failed=False, reset_dag_runs=True)
        self.call(f"clear {dag_id}/{run_id}", self.task_instances.post_clear_task_instances, dag_id, body, idempotent=False)
