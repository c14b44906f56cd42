"""The Airflow UI with the flywheel plugin, in a real browser (Playwright driving Debian's chromium).

Runs against the e2e tier's stack after the drift loop (conftest.py; this file sorts after
test_drift_loop.py): log in with the generated password, open Model health from the navigation,
go from a ``monitor`` task instance to its Evidently report and from a ``validate_landing`` task
instance to its Data Docs, and check that an anonymous browser gets nothing. Screenshots go to
``FLYWHEEL_HOME/screenshots``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.story import DAYS
from tests.services import require_program

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
FEATURES_DAY = DAYS[1]


@pytest.fixture(scope="module")
def browser(airflow_stack) -> Iterator[Any]:
    require_program("chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: chromium refuses to sandbox as root (CI runs as root).
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(airflow_stack):
    folder = airflow_stack.home / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, airflow_stack) -> Iterator[Any]:
    """A page logged in through the UI's login form with the generated admin password."""
    from flywheel import launch

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(airflow_stack.airflow_url + "/")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", launch.admin_password(airflow_stack))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/auth/login)"))
    yield page
    context.close()


def _plugin_frame(page: Any, path: str) -> Any:
    """The iframe in which the Airflow UI shows a plugin page whose URL contains ``path``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for frame in page.frames:
            # The UI's own URL ends with the plugin's href too (/plugin/<route>/flywheel/...): skip it.
            if frame is not page.main_frame and path in frame.url:
                frame.wait_for_load_state()
                return frame
        page.wait_for_timeout(250)
    raise AssertionError(f"no frame showing {path}; frames: {[f.url for f in page.frames]}")


def _model_health(page: Any, url: str) -> Any:
    """From the UI's home page, one click on the navigation's Model health; returns its frame."""
    page.goto(url + "/")
    page.get_by_role("link", name=re.compile("Model health")).click()
    return _plugin_frame(page, "/flywheel/model-health")


def _open_evidence(page: Any, url: str, dag_id: str) -> Any:
    """Open a task instance page of the Airflow UI, click its Evidence tab; returns the plugin's frame."""
    page.goto(url)
    page.get_by_role("link", name="Evidence").or_(page.get_by_role("tab", name="Evidence")).first.click()
    return _plugin_frame(page, f"/flywheel/evidence/{dag_id}/")


def _follow_in_frame(page: Any, frame: Any, link: Any, part: str) -> Any:
    """Click a link of a plugin frame: our files open in the frame itself (it may not open popups)."""
    link.click()
    return _plugin_frame(page, part)


def test_model_health_is_one_click_from_the_navigation(page, airflow_stack, screenshots):
    from flywheel.drift.daily_log import read_monitoring_history

    monitored = read_monitoring_history(airflow_stack)["ds"].tolist()
    assert monitored, "the drift loop test monitors days first; run the e2e tier as a whole"
    health = _model_health(page, airflow_stack.airflow_url)
    health.get_by_text("Champion timeline").wait_for()
    text = health.inner_text("body")
    assert "promoted" in text and "v1" in text
    # One point per monitored day in each chart, and a row with its report link per day.
    health.locator(".js-plotly-plot").first.wait_for()
    assert health.locator(".js-plotly-plot").count() == 3
    points = health.locator(".js-plotly-plot").first.locator(".scatterlayer .trace").first.locator(".points path")
    assert points.count() == len(monitored)
    for ds in monitored:
        assert health.locator(f"a[href*='ds={ds}/report.html']").count() >= 1, ds
    page.screenshot(path=str(screenshots / "model-health.png"), full_page=True)


def test_a_days_report_and_a_training_run_are_one_more_click(page, airflow_stack):
    from flywheel.drift.daily_log import read_monitoring_history
    from flywheel.registry import history

    day = read_monitoring_history(airflow_stack)["ds"].tolist()[-1]
    health = _model_health(page, airflow_stack.airflow_url)
    report = _follow_in_frame(page, health, health.locator(f"a[href*='ds={day}/report.html']").first, "/report.html")
    report.get_by_text("Dataset Drift").first.wait_for()

    # The day's Data Docs (its landing gate): one click from Model health too.
    health = _model_health(page, airflow_stack.airflow_url)
    docs = health.locator(f"tr:has-text('{day}') a", has_text="flights_landing").first
    shown = _follow_in_frame(page, health, docs, "/validations/flights_landing/")
    assert "flights_landing" in shown.content()

    # The MLflow run of the drift loop's retraining, in the MLflow UI served through the plugin.
    trained = [r for r in history.read_history(airflow_stack) if (r.get("run") or {}).get("mlflow_run_id")]
    assert trained, "the drift loop's retraining records its MLflow run"
    mlflow_run_id = trained[-1]["run"]["mlflow_run_id"]
    health = _model_health(page, airflow_stack.airflow_url)
    run_link = health.locator(f"a[href*='{mlflow_run_id}']").first
    assert run_link.get_attribute("href").startswith("/flywheel/mlflow/#/")
    mlflow = _follow_in_frame(page, health, run_link, "/flywheel/mlflow/")
    mlflow.get_by_text(re.compile(r"Run ID|Overview|Parameters")).first.wait_for(timeout=60_000)
    assert mlflow_run_id in mlflow.url or mlflow_run_id in mlflow.content()


def test_from_a_monitor_task_to_its_evidently_report(page, airflow_stack, screenshots):
    from flywheel.airflow_api import AirflowAPI

    runs = [r for r in AirflowAPI(airflow_stack).runs("flights_monitoring") if r["state"] == "success"]
    assert runs, "the drift loop test runs flights_monitoring first"
    run = runs[-1]
    url = f"{airflow_stack.airflow_url}/dags/flights_monitoring/runs/{run['dag_run_id']}/tasks/monitor"
    frame = _open_evidence(page, url, "flights_monitoring")
    report = frame.get_by_role("link", name=re.compile("Evidently report")).first
    report.wait_for()
    shown = _follow_in_frame(page, frame, report, "/report.html")
    shown.get_by_text("Dataset Drift").first.wait_for()
    page.screenshot(path=str(screenshots / "monitor-evidence.png"))


def test_from_a_validate_landing_task_to_its_data_docs(page, airflow_stack, screenshots):
    from flywheel.airflow_api import AirflowAPI

    api = AirflowAPI(airflow_stack)
    api.unpause("flights_features")
    triggered = api.trigger("flights_features", {"from_ds": FEATURES_DAY.isoformat(), "to_ds": FEATURES_DAY.isoformat()})
    run = api.wait_run("flights_features", triggered["dag_run_id"])
    assert run["state"] == "success", api.task_states("flights_features", run["dag_run_id"])
    url = f"{airflow_stack.airflow_url}/dags/flights_features/runs/{run['dag_run_id']}/tasks/validate_landing"
    frame = _open_evidence(page, url, "flights_features")
    docs = frame.get_by_role("link", name=re.compile(r"Data Docs: flights_landing")).first
    docs.wait_for()
    shown = _follow_in_frame(page, frame, docs, "/validations/flights_landing/")
    assert "flights_landing" in shown.content()
    page.screenshot(path=str(screenshots / "validate-landing-evidence.png"))


def test_an_anonymous_browser_gets_nothing(browser, airflow_stack):
    context = browser.new_context()
    try:
        for path in ("/flywheel/model-health", "/flywheel/api/monitoring", "/flywheel/static/plotly.min.js", "/flywheel/mlflow/"):
            response = context.request.get(airflow_stack.airflow_url + path)
            assert response.status == 401, (path, response.status)
        page = context.new_page()
        page.goto(airflow_stack.airflow_url + "/plugin/flywheel-task-evidence")
        page.wait_for_url(re.compile(r"/auth/login"))
    finally:
        context.close()
