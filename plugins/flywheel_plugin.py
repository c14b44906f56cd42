"""Flywheel's Airflow 3 plugin: model health and the evidence behind each task, inside the Airflow UI.

A FastAPI app mounted at ``/flywheel`` plus external views (a "Model health" page in the nav, an
"Evidence" tab on task instances and DAG runs). Airflow does not protect a plugin's app by itself:
every route here depends on Airflow's auth (``GetUserDep`` via ``requires_access_*``), so an
anonymous request gets 401. Domain logic lives in ``flywheel.ui`` (no Airflow there); this module
wires routes, auth and the Airflow database look-ups (DagRun, XCom). Import stays light: the
api-server imports every plugin, so pandas, plotly and SQLAlchemy models load inside the routes.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from flywheel.orchestration.replay import ReplayTimetable

URL_PREFIX = "/flywheel"  # flywheel.ui.files.URL_PREFIX (not imported here: keeps the plugin import light)
# The lake and the model registry are what these DAGs produce: pages that show all of it need read access to all.
FLYWHEEL_DAGS = ("flights_features", "flights_scoring", "flights_monitoring", "flights_training", "flights_retraining")
_FLYWHEEL_READ = [Depends(requires_access_view(AccessView.WEBSITE))] + [
    Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id)) for dag_id in FLYWHEEL_DAGS
]
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}

app = FastAPI(title="Flywheel", description="Model health and task evidence (every route needs an Airflow login).")
_PLOTLY_JS: dict[str, str] = {}


def _settings() -> Any:
    from flywheel import config

    return config.load()


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers=_SECURITY_HEADERS)


@app.get("/model-health", response_class=HTMLResponse, dependencies=_FLYWHEEL_READ)
def model_health() -> HTMLResponse:
    """Champion timeline and monitoring charts."""
    from flywheel.registry.history import read_history
    from flywheel.ui import pages, timeline

    settings = _settings()
    records = read_history(settings)
    return _html(
        pages.model_health(
            timeline.champion_rows(records, settings),
            timeline.monitoring_rows(timeline.read_monitoring(settings), settings),
            timeline.thresholds(settings),
            timeline.retraining_dates(records),
        )
    )


@app.get("/api/champions", dependencies=_FLYWHEEL_READ)
def api_champions() -> JSONResponse:
    """The champion timeline as JSON (what the page shows)."""
    from flywheel.registry.history import read_history
    from flywheel.ui import timeline

    settings = _settings()
    return JSONResponse({"champions": timeline.champion_rows(read_history(settings), settings)})


@app.get("/api/monitoring", dependencies=_FLYWHEEL_READ)
def api_monitoring() -> JSONResponse:
    """The monitoring timeline, thresholds and retraining dates as JSON."""
    from flywheel.registry.history import read_history
    from flywheel.ui import timeline

    settings = _settings()
    return JSONResponse(
        {
            "thresholds": timeline.thresholds(settings),
            "retraining_as_of": timeline.retraining_dates(read_history(settings)),
            "days": timeline.monitoring_rows(timeline.read_monitoring(settings), settings),
        }
    )


@app.get("/static/plotly.min.js", dependencies=[Depends(requires_access_view(AccessView.WEBSITE))])
def plotly_js() -> Response:
    """plotly.js from the installed plotly package (no CDN)."""
    if "js" not in _PLOTLY_JS:
        from plotly.offline import get_plotlyjs

        _PLOTLY_JS["js"] = get_plotlyjs()
    return Response(
        _PLOTLY_JS["js"], media_type="application/javascript", headers={"X-Content-Type-Options": "nosniff"}
    )


@app.get("/files/{root}/{path:path}", dependencies=_FLYWHEEL_READ)
def serve_file(root: str, path: str) -> FileResponse:
    """A report, manifest, gate summary or Data Docs file; 404 for anything outside the served folders."""
    from flywheel.ui import files

    settings = _settings()
    served = files.roots(settings).get(root)
    if served is None:
        raise HTTPException(404, f"no served root {root!r} (roots: lake, home)")
    try:
        target = files.resolve(served, path)
    except files.UnsafePath as exc:
        raise HTTPException(404, f"not served: {exc}") from exc
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media_type, headers=_SECURITY_HEADERS)


# Hop-by-hop and identity headers are not passed on: MLflow never sees the Airflow login.
_NOT_FORWARDED = {"host", "cookie", "authorization", "connection", "keep-alive", "transfer-encoding",
                  "content-length", "accept-encoding", "origin", "referer"}  # fmt: skip
_NOT_RETURNED = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "set-cookie"}


def _mlflow_read_only(request: Request, path: str) -> None:
    """The proxied MLflow UI is for reading: GET, and POST only to MLflow's search endpoints (the UI
    searches runs, models and traces by POST). A change to the registry (moving ``champion``,
    deleting a version) goes through the DAGs or MLflow itself, never through a reader's Airflow login."""
    if request.method == "GET":
        return
    if not path.rstrip("/").endswith("/search"):
        raise HTTPException(403, f"the MLflow UI inside Airflow is read-only: {request.method} /{path} refused")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:  # a page of another site posting with the user's cookie
        raise HTTPException(403, f"cross-origin {request.method} from {origin} refused")


@app.api_route("/mlflow/{path:path}", methods=["GET", "POST"], dependencies=_FLYWHEEL_READ)
async def mlflow_proxy(request: Request, path: str) -> Response:
    """The stack's MLflow UI on Airflow's origin, behind Airflow's login, read-only.

    The MLflow server of the laptop stack has no login of its own and refuses to be framed by
    another origin; served here it needs the Airflow login and opens inside the Airflow UI.
    """
    import httpx

    from flywheel import config

    _mlflow_read_only(request, path)
    settings = _settings()
    if not settings.mlflow_stack_server:
        raise HTTPException(404, f"MLflow is the server at {settings.mlflow_tracking_uri}, not proxied here")
    upstream = f"{settings.mlflow_ui_url}/{path}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
    async with httpx.AsyncClient(timeout=60) as client:
        try:
            answer = await client.request(
                request.method, upstream, params=request.query_params, content=await request.body(), headers=headers
            )
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"MLflow at {config.MLFLOW_PATH} does not answer ({exc}); is the stack up?") from exc
    kept = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_RETURNED}
    return Response(answer.content, status_code=answer.status_code, headers=kept)


def _run_info(dag_id: str, run_id: str) -> Any:
    """The DagRun's logical date, conf and consumed asset events' extras (404 when there is no such run)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from flywheel import clock
    from flywheel.ui.evidence import RunInfo

    with create_session() as session:
        run = session.scalar(
            select(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            .options(selectinload(DagRun.consumed_asset_events))
        )
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
        return RunInfo(
            dag_id=dag_id,
            run_id=run_id,
            logical_date=clock.data_day(run.logical_date) if run.logical_date else None,
            conf=dict(run.conf or {}),
            partition_key=run.partition_key,
            event_extras=[dict(e.extra or {}) for e in run.consumed_asset_events],
        )


def _xcoms(dag_id: str, run_id: str, user: Any) -> dict[str, Any]:
    """The return values of the training tasks of a run, when the user may read this DAG's XComs."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from flywheel.ui.evidence import TRAINING_XCOM_TASKS

    allowed = get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.XCOM, details=DagDetails(id=dag_id), user=user
    )
    if not allowed:
        return {}
    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.key == "return_value",
                XComModel.map_index == -1,
                XComModel.task_id.in_(TRAINING_XCOM_TASKS),
            )
        ).all()
    # deserialize_value reads ``.value`` of a result row.
    return {row.task_id: XComModel.deserialize_value(row) for row in rows}


def _evidence_response(request: Request, user: Any, dag_id: str, run_id: str, task_id: str | None) -> Response:
    from flywheel.ui import evidence, pages

    settings = _settings()
    run = _run_info(dag_id, run_id)
    xcoms = _xcoms(dag_id, run_id, user)
    try:
        found = evidence.for_task(run, task_id, xcoms, settings) if task_id else evidence.for_run(run, xcoms, settings)
    except evidence.EvidenceError as exc:
        raise HTTPException(422, str(exc)) from exc
    return _html(pages.evidence_page(found))


@app.get(
    "/evidence/{dag_id}/{run_id}",
    response_class=HTMLResponse,
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))],
)
def run_evidence(request: Request, user: GetUserDep, dag_id: str, run_id: str) -> Response:
    """Everything the run produced, day by day."""
    return _evidence_response(request, user, dag_id, run_id, None)


@app.get(
    "/evidence/{dag_id}/{run_id}/{task_id}",
    response_class=HTMLResponse,
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))],
)
def task_evidence(request: Request, user: GetUserDep, dag_id: str, run_id: str, task_id: str) -> Response:
    """What this task instance produced (or that it produces nothing to show)."""
    return _evidence_response(request, user, dag_id, run_id, task_id)


class FlywheelPlugin(AirflowPlugin):
    """Model health in the nav, evidence on task instances and DAG runs, the replay clock's timetable."""

    name = "flywheel"
    # The scheduler deserializes a DAG's timetable only from a registered class (FLYWHEEL_REPLAY_*).
    timetables = [ReplayTimetable]
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Flywheel"}]
    external_views = [
        {
            "name": "Model health",
            "href": f"{URL_PREFIX}/model-health",
            "destination": "nav",
            "url_route": "flywheel-model-health",
            "category": "Flywheel",
        },
        {
            "name": "Evidence",
            "href": f"{URL_PREFIX}/evidence/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}",
            "destination": "task_instance",
            "url_route": "flywheel-task-evidence",
        },
        {
            "name": "Evidence",
            "href": f"{URL_PREFIX}/evidence/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "flywheel-run-evidence",
        },
    ]
