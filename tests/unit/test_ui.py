"""flywheel.ui: path safety, timelines and evidence resolution on tiny hand-built lakes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from flywheel import config
from flywheel.ui import evidence, files, pages, timeline

DAY = "2013-01-05"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> config.Settings:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLYWHEEL_LAKE", raising=False)
    monkeypatch.setenv("FLYWHEEL_MLFLOW_PORT", "5000")
    s = config.load()
    s.lake.mkdir(parents=True)
    s.data_docs_dir.mkdir(parents=True)
    return s


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- files: what may be served -----------------------------------------------------------------


def test_resolve_serves_lake_files_and_data_docs(settings):
    report = _write(settings.lake / "reports/monitoring/ds=2013-01-05/report.html")
    css = _write(settings.data_docs_dir / "static/styles/a.css")
    roots = files.roots(settings)
    assert files.resolve(roots["lake"], "reports/monitoring/ds=2013-01-05/report.html") == report.resolve()
    assert files.resolve(roots["home"], "gx/data_docs/static/styles/a.css") == css.resolve()


@pytest.mark.parametrize(
    "root, requested",
    [
        ("home", "airflow/passwords.json"),  # the home is served for its Data Docs only
        ("home", "gx/data_docs/../../airflow/passwords.json"),
        ("lake", "../airflow/passwords.json"),
        ("lake", "/etc/passwd"),
        ("lake", ""),
        ("lake", "a\x00.html"),
        ("lake", "..\\airflow\\passwords.json"),
        ("lake", ".staging-ds=2013-01-05/report.html"),  # hidden: half-written partitions, locks
        ("lake", "monitoring/daily/ds=2013-01-05/part-00000.parquet"),  # data, not evidence
        ("lake", "reports/monitoring/ds=2013-01-06/report.html"),  # does not exist
        ("lake", "reports"),  # a folder
        ("lake", "escape.html"),  # a symlink pointing out of the lake
        ("home", "gx/data_docs/inner.html"),  # a symlink from the docs to elsewhere in the home
    ],
)
def test_resolve_refuses(settings, root, requested):
    secret = _write(settings.home / "airflow/passwords.json", '{"admin": "pw"}')
    _write(settings.lake / "monitoring/daily/ds=2013-01-05/part-00000.parquet")
    _write(settings.lake / ".staging-ds=2013-01-05/report.html")
    (settings.lake / "reports").mkdir(exist_ok=True)
    (settings.lake / "escape.html").symlink_to(secret)
    (settings.data_docs_dir / "inner.html").symlink_to(secret)
    with pytest.raises(files.UnsafePath):
        files.resolve(files.roots(settings)[root], requested)


def test_url_for(settings):
    assert files.url_for(settings.lake / "reports/x/ds=2013-01-05/report.html", settings) == (
        "/flywheel/files/lake/reports/x/ds=2013-01-05/report.html"
    )
    assert (
        files.url_for(settings.data_docs_dir / "index.html", settings) == "/flywheel/files/home/gx/data_docs/index.html"
    )
    assert files.url_for(settings.home / "airflow/passwords.json", settings) is None
    assert files.url_for(Path("/etc/passwd"), settings) is None


def test_data_docs_page(settings):
    identifier = "ValidationResultIdentifier::flights_landing/2013-01-05-ab12/20261128T120000.000000Z/flywheel-flights"
    assert files.data_docs_page(identifier, settings) == (
        settings.data_docs_dir
        / "validations/flights_landing/2013-01-05-ab12/20261128T120000.000000Z/flywheel-flights.html"
    )
    for bad in ("flights_landing/a/b/c", "ValidationResultIdentifier::a/../b/c", "ValidationResultIdentifier::a/b"):
        with pytest.raises(ValueError):
            files.data_docs_page(bad, settings)


# --- timelines --------------------------------------------------------------------------------


RECORDS = [
    {"as_of": "2013-01-28", "version": 1, "decision": "promoted", "source": "training", "reason": "first",
     "model": "flights_delay", "metrics": {"challenger": {"roc_auc": 0.61, "f1": 0.37, "rows": 10.0}},
     "run": {"mlflow_run_id": "r1", "dag_id": "flights_training"}},
    {"as_of": "2013-02-10", "version": 2, "decision": "rejected", "source": "retraining", "reason": "margin",
     "model": "flights_delay", "metrics": {"challenger": {"roc_auc": float("nan")}}, "run": {}},
    {"as_of": "2013-02-12", "version": 1, "decision": "rollback", "source": "rollback", "reason": "rollback: bad",
     "model": "flights_delay", "metrics": {}, "run": {}},
]  # fmt: skip


def test_champion_rows(settings):
    rows = timeline.champion_rows(RECORDS, settings)
    assert [(r["as_of"], r["version"], r["source"], r["decision"]) for r in rows] == [
        ("2013-01-28", 1, "training", "promoted"),
        ("2013-02-10", 2, "retraining", "rejected"),
        ("2013-02-12", 1, "rollback", "rolled back"),
    ]
    assert rows[0]["metrics"] == {"roc_auc": 0.61, "f1": 0.37}
    assert rows[1]["metrics"] == {"roc_auc": None}
    assert rows[0]["mlflow_run_url"] == "/flywheel/mlflow/#/runs/r1"
    assert rows[1]["mlflow_run_url"] is None
    assert rows[2]["mlflow_version_url"] == "/flywheel/mlflow/#/models/flights_delay/versions/1"
    assert timeline.retraining_dates(RECORDS) == ["2013-02-10"]


def test_monitoring_rows(settings):
    _write(timeline.report_path("2013-02-02", settings))
    history = [
        {"ds": "2013-02-02", "champion_version": 1, "drift_share": 0.4, "prediction_drift": 0.5, "roc_auc": None,
         "champion_holdout_auc": 0.63, "signal": True, "decision": "drift", "fired": "drift_share,quality"},
        {"ds": "2013-02-01", "champion_version": 1, "drift_share": 0.1, "prediction_drift": float("nan"),
         "roc_auc": 0.6, "champion_holdout_auc": 0.63, "signal": False, "decision": "ok", "fired": ""},
    ]  # fmt: skip
    rows = timeline.monitoring_rows(history, settings)
    assert [(r["ds"], r["decision"], r["quality_threshold"], r["fired"]) for r in rows] == [
        ("2013-02-01", "ok", 0.58, []),
        ("2013-02-02", "drift", 0.58, ["drift_share", "quality"]),
    ]
    assert rows[0]["prediction_drift"] is None and rows[0]["report_url"] is None
    assert rows[1]["report_url"] == "/flywheel/files/lake/reports/monitoring/ds=2013-02-02/report.html"
    figures = pages.monitoring_figures(rows, timeline.thresholds(settings), ["2013-02-02"])
    assert [f["data"][1]["y"] for f in figures] == [[0.3, 0.3], [1.25, 1.25], [0.58, 0.58]]
    assert figures[0]["data"][0]["customdata"] == [None, rows[1]["report_url"]]
    assert figures[0]["layout"]["shapes"][0]["x0"] == "2013-02-02"
    assert rows[0]["data_docs"] == rows[1]["data_docs"] == []


def test_a_monitored_day_links_to_the_data_docs_of_its_gates(settings):
    landed = _write(settings.lake / "landing/flights/ds=2013-02-01/_validation.json", json.dumps({
        "suites": {"flights_landing": {"validation_results": [
            "ValidationResultIdentifier::flights_landing/2013-02-01-a/20261128T1Z/flights"]},
            "weather_landing": {"validation_results": [
            "ValidationResultIdentifier::weather_landing/2013-02-01-b/20261128T1Z/weather"]}}}))  # fmt: skip
    _write(settings.lake / "features/flights/ds=2013-02-01/_validation.json", "not json")  # unreadable: skipped
    page = _write(settings.data_docs_dir / "validations/flights_landing/2013-02-01-a/20261128T1Z/flights.html")
    rows = timeline.monitoring_rows([{"ds": "2013-02-01", "decision": "ok"}], settings)
    # The weather page was never rendered: left out, not linked to an error.
    assert rows[0]["data_docs"] == [{"suite": "flights_landing", "url": files.url_for(page, settings)}]
    assert rows[0]["data_docs"][0]["url"].startswith("/flywheel/files/home/")
    assert landed.is_file()
    html = pages.model_health([], rows, timeline.thresholds(settings), [])
    assert f"<a href='{rows[0]['data_docs'][0]['url']}'>flights_landing</a>" in html


def test_model_health_empty_lake_says_so():
    html = pages.model_health([], [], {}, [])
    assert "Nothing has run yet" in html


def test_model_health_escapes_html(settings):
    rows = timeline.champion_rows([{**RECORDS[0], "reason": "<script>alert(1)</script>"}], settings)
    html = pages.model_health(rows, [], timeline.thresholds(settings), [])
    assert "<script>alert" not in html and "&lt;script&gt;" in html


# --- evidence ---------------------------------------------------------------------------------


def test_run_days():
    run = evidence.RunInfo
    assert evidence.run_days(run("d", "r", dt.date(2013, 1, 5))) == ["2013-01-05"]
    assert evidence.run_days(run("d", "r", dt.date(2013, 1, 5), {"from_ds": "2013-01-03", "to_ds": "2013-01-04"})) == [
        "2013-01-03",
        "2013-01-04",
    ]
    assert evidence.run_days(run("d", "r", None, {"from_ds": "2013-01-03", "to_ds": None})) == ["2013-01-03"]
    extras = [{"ds": "2013-02-03", "drift_days": ["2013-02-03", "2013-02-05"]}, {"ds": "2013-02-01"}]
    assert evidence.run_days(run("d", "r", None, {}, extras)) == ["2013-02-01", "2013-02-03", "2013-02-05"]
    assert evidence.run_days(run("d", "r", None)) == []
    # An asset-triggered run of scoring/monitoring/retraining: its partition key, before its events.
    assert evidence.run_days(run("d", "r", None, {}, extras, "2013-02-10")) == ["2013-02-10"]
    assert evidence.run_days(run("d", "r", None, {}, [], "2013-02-27..2013-03-01")) == ["2013-02-27", "2013-02-28", "2013-03-01"]
    with pytest.raises(evidence.EvidenceError, match="partition key '2013-02-31'"):
        evidence.run_days(run("d", "r", None, {}, [], "2013-02-31"))
    with pytest.raises(evidence.EvidenceError, match="without from_ds"):
        evidence.run_days(run("d", "r", None, {"to_ds": "2013-01-03"}))
    with pytest.raises(evidence.EvidenceError, match="ends before it starts"):
        evidence.run_days(run("d", "r", None, {"from_ds": "2013-01-04", "to_ds": "2013-01-03"}))


@pytest.mark.parametrize(
    "task_id, kind",
    [
        ("land", "landing"), ("validate_landing", "landing"), ("build_features", "features"),
        ("validate_features", "features"), ("emit_features_event", "features"), ("score", "scoring"), ("monitor", "monitoring"),
        ("branch_on_drift", "monitoring"), ("drift_detected", "monitoring"), ("no_drift", "monitoring"), ("guard", "monitoring"),
        ("train_and_gate.train_challenger", "training"), ("train_and_gate.promote_or_reject", "training"),
        ("rollback_champion", "training"), ("wait_for_history", None), ("choose_mode", None), ("should_retrain", None),
    ],
)  # fmt: skip
def test_task_kind(task_id, kind):
    assert evidence.task_kind(task_id) == kind


def _landing_summary(success: bool, failures: list | None = None) -> dict:
    return {
        "gate": "landing", "ds": DAY, "success": success, "failures": failures or [],
        "expectations": {"evaluated": 4, "successful": 3 if failures else 4},
        "suites": {"flights_landing": {"success": success, "validation_results": [
            f"ValidationResultIdentifier::flights_landing/{DAY}-x/20261128T120000.000000Z/flywheel-flights"]}},
    }  # fmt: skip


def test_landing_evidence_passed_with_missing_docs_page(settings):
    part = settings.lake / f"landing/flights/ds={DAY}"
    _write(part / "_manifest.json", "{}")
    _write(part / "_validation.json", json.dumps(_landing_summary(True)))
    found = evidence.for_task(evidence.RunInfo("flights_features", "r", dt.date(2013, 1, 5)), "land", {}, settings)
    (section,) = found.sections
    assert section.heading == f"ds={DAY}: landing"
    assert [(i.title, i.url) for i in section.items[:2]] == [
        ("landing manifest", f"/flywheel/files/lake/landing/flights/ds={DAY}/_manifest.json"),
        ("landing gate summary: passed", f"/flywheel/files/lake/landing/flights/ds={DAY}/_validation.json"),
    ]
    assert section.items[1].details == ["4 of 4 GX expectations passed"]
    docs = section.items[2]
    assert docs.url is None and docs.missing.startswith("not written yet: ")


def test_landing_evidence_quarantined_lists_failures(settings):
    failure = {
        "check": "expect_column_values_to_not_be_null",
        "table": "flights",
        "column": "dep_time",
        "unexpected_count": 7,
    }
    _write(
        settings.lake / f"quarantine/flights/ds={DAY}/_validation.json", json.dumps(_landing_summary(False, [failure]))
    )
    found = evidence.for_task(
        evidence.RunInfo("flights_features", "r", dt.date(2013, 1, 5)), "validate_landing", {}, settings
    )
    items = found.sections[0].items
    assert items[0].missing.startswith("not written yet")  # the manifest moved to quarantine with the day
    assert items[1].title == "landing gate summary: FAILED (quarantined)"
    assert items[1].url == f"/flywheel/files/lake/quarantine/flights/ds={DAY}/_validation.json"
    assert items[1].details == [
        "3 of 4 GX expectations passed",
        "expect_column_values_to_not_be_null on flights.dep_time; unexpected count: 7",
    ]


def test_features_scoring_monitoring_evidence(settings):
    _write(settings.lake / f"features/flights/ds={DAY}/_manifest.json", "{}")
    _write(settings.lake / f"predictions/flights/ds={DAY}/_manifest.json", json.dumps({"rows": 5, "model_version": 2}))
    run = evidence.RunInfo("x", "r", dt.date(2013, 1, 5))
    features = evidence.for_task(run, "emit_features_event", {}, settings).sections[0].items
    assert [i.title for i in features] == ["features manifest", "features gate summary"]
    assert features[1].missing.startswith("not written yet")
    scored = evidence.for_task(run, "score", {}, settings).sections[0].items
    assert scored[0].url == f"/flywheel/files/lake/predictions/flights/ds={DAY}/_manifest.json"
    assert scored[0].details == ["rows: 5", "model_version: 2"]
    monitored = evidence.for_task(run, "no_drift", {}, settings).sections[0].items
    assert [i.title for i in monitored] == ["Evidently report", "monitoring metrics"]
    assert all(i.url is None for i in monitored)


def test_training_evidence_from_xcom(settings):
    run = evidence.RunInfo("flights_retraining", "r", None)
    xcoms = {
        "train_and_gate.train_challenger": {"run_id": "abc", "experiment_id": "3", "model_version": 4, "as_of": DAY},
        "train_and_gate.promote_or_reject": {"decision": "rejected", "version": 4, "reason": "margin"},
    }
    items = evidence.for_task(run, "train_and_gate.assemble_training_set", xcoms, settings).sections[0].items
    assert [(i.title, i.url) for i in items] == [
        ("MLflow run abc", "/flywheel/mlflow/#/experiments/3/runs/abc"),
        ("model version flights_delay v4", "/flywheel/mlflow/#/models/flights_delay/versions/4"),
        ("decision: rejected (v4)", "/flywheel/mlflow/#/models/flights_delay/versions/4"),
    ]
    missing = evidence.for_task(run, "train_and_gate.train_challenger", {}, settings).sections[0].items
    assert missing[0].url is None and "no result (XCom) yet" in missing[0].missing


def test_no_evidence_task_and_page(settings):
    found = evidence.for_task(
        evidence.RunInfo("flights_scoring", "r", dt.date(2013, 1, 5)), "wait_for_features", {}, settings
    )
    assert found.sections == [] and found.note.startswith("no evidence for this task")
    html = pages.evidence_page(found)
    assert "no evidence for this task" in html and "/flywheel/evidence/flights_scoring/r" in html


def test_run_evidence_by_dag(settings):
    run = evidence.RunInfo("flights_features", "r", dt.date(2013, 1, 5))
    headings = [s.heading for s in evidence.for_run(run, {}, settings).sections]
    assert headings == [f"ds={DAY}: landing", f"ds={DAY}: features"]
    assert evidence.for_run(evidence.RunInfo("other", "r", None), {}, settings).note.startswith("no evidence")


def test_mlflow_links_go_through_airflows_origin_unless_mlflow_is_the_users_server(settings, monkeypatch):
    # The stack's own MLflow server: its UI is proxied by the plugin under config.MLFLOW_PATH.
    assert timeline.mlflow_ui_base(settings) == config.MLFLOW_PATH == "/flywheel/mlflow"
    assert settings.mlflow_ui_url == "http://127.0.0.1:5000/flywheel/mlflow"
    assert pages._link("run", "/flywheel/mlflow/#/runs/r1") == "<a href='/flywheel/mlflow/#/runs/r1'>run</a>"
    # A tracking server of the user's: linked directly, in a new tab (it may refuse to be framed).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.com/")
    remote = config.load()
    assert timeline.mlflow_version_url(remote, "m", 2) == "https://mlflow.example.com/#/models/m/versions/2"
    assert "target='_blank'" in pages._link("v2", "https://mlflow.example.com/#/models/m/versions/2")
