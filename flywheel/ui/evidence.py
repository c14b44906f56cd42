"""What a task instance of a Flywheel run produced, found in the lake and in the task's XCom.

The run's days: its partition key (an asset-triggered run of scoring, monitoring or retraining: a
day or ``first..last``), else its ``from_ds``/``to_ds`` conf (a range run), else its logical date, else the
dates its triggering asset events carry (``ds``, ``days``, ``drift_days``: asset-triggered runs
have no logical date). Each task id maps to a kind of evidence; a link whose file does not
exist yet is shown as missing, with the path it will have.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel import catalog, config, features, lake, landing, partition_keys, scoring
from flywheel.ui import files, timeline

# Evidence kinds: the stage of the loop a task belongs to (stages, not lake zones, though three share a name).
LANDING, FEATURES, SCORING, MONITORING, TRAINING = "landing", "features", "scoring", "monitoring", "training"  # not a lake zone
LANDING_TASKS = frozenset({"land", "validate_landing"})
FEATURES_TASKS = frozenset({"build_features", "validate_features", "emit_features_event"})
SCORING_TASKS = frozenset({"score"})
MONITORING_TASKS = frozenset({"monitor", "branch_on_drift", "drift_detected", "no_drift", "guard", "read_drift_events"})
TRAINING_GROUP = "train_and_gate."
# The train_and_gate tasks whose XCom the evidence reads (the plugin fetches these for training runs).
TRAINING_XCOM_TASKS = (
    "train_and_gate.validate_training_set",
    "train_and_gate.train_challenger",
    "train_and_gate.promote_or_reject",
    "rollback_champion",
)


class EvidenceError(ValueError):
    """A run's days cannot be told (bad conf dates)."""


@dataclass(frozen=True)
class RunInfo:
    """What the plugin reads about a DagRun from Airflow's database."""

    dag_id: str
    run_id: str
    logical_date: dt.date | None = None
    conf: dict[str, Any] = field(default_factory=dict)
    event_extras: list[dict[str, Any]] = field(default_factory=list)
    partition_key: str | None = None  # the days of an asset-triggered run (a day, or first..last)


@dataclass
class Item:
    """One piece of evidence: a link (None when its target does not exist yet) and details."""

    title: str
    url: str | None = None
    missing: str | None = None
    details: list[str] = field(default_factory=list)


@dataclass
class Section:
    heading: str
    items: list[Item] = field(default_factory=list)


@dataclass
class Evidence:
    dag_id: str
    run_id: str
    task_id: str | None
    days: list[str]
    sections: list[Section] = field(default_factory=list)
    note: str | None = None


def run_days(run: RunInfo) -> list[str]:
    """The days a run worked on (see the module docstring), in order."""
    if run.partition_key:
        try:
            return partition_keys.days_of(run.partition_key)
        except partition_keys.PartitionKeyError as exc:
            raise EvidenceError(f"run {run.run_id}: {exc}") from exc
    first, last = run.conf.get("from_ds"), run.conf.get("to_ds")
    if first or last:
        if not first:
            raise EvidenceError(f"run {run.run_id}: to_ds={last} without from_ds")
        try:
            return [d.isoformat() for d in lake.days_between(first, last or first)]
        except lake.LakeError as exc:
            raise EvidenceError(f"run {run.run_id}: from_ds={first} to_ds={last}: {exc}") from exc
    if run.logical_date is not None:
        return [run.logical_date.isoformat()]
    days: set[str] = set()
    for extra in run.event_extras:
        for value in [extra.get("ds"), *(extra.get("days") or []), *(extra.get("drift_days") or [])]:
            if value:
                days.add(lake.parse_ds(value).isoformat())
    return sorted(days)


def _file_item(title: str, path: Path, settings: config.Settings) -> Item:
    if path.is_file():
        url = files.url_for(path, settings)
        if url:
            return Item(title, url=url)
        return Item(title, missing=f"{path} is outside the served folders (lake, Data Docs)")
    return Item(title, missing=f"not written yet: {path}")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"unreadable": f"{path}: {type(exc).__name__}: {exc}"}
    return payload if isinstance(payload, dict) else {"unreadable": f"{path}: not a JSON object"}


def _describe_failure(failure: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in (failure.get("table"), failure.get("column")) if p)
    parts = [f"{failure.get('check')} on {where or '?'}"]
    for key in ("unexpected_count", "observed_value", "expected", "examples", "error", "detail"):
        if failure.get(key) not in (None, "", [], {}):
            parts.append(f"{key.replace('_', ' ')}: {failure[key]}")
    return "; ".join(parts)


def _gate_items(summary: dict[str, Any], where: Path, settings: config.Settings) -> list[Item]:
    """A gate summary: its verdict and failures, and the Data Docs page of each validation result."""
    if "unreadable" in summary:
        return [Item("gate summary", missing=summary["unreadable"])]
    gate = summary.get("gate") or summary.get("stage") or "gate"
    verdict = "passed" if summary.get("success") else "FAILED (quarantined)"
    exp = summary.get("expectations") or {}
    details = [f"{exp.get('successful')} of {exp.get('evaluated')} GX expectations passed"] if exp else []
    details += [_describe_failure(f) for f in summary.get("failures") or []]
    if summary.get("error"):
        details.append(str(summary["error"]))
    items = [Item(f"{gate} gate summary: {verdict}", url=files.url_for(where, settings), details=details)]
    for suite, result in sorted((summary.get("suites") or {}).items()):
        for identifier in result.get("validation_results") or []:
            try:
                page = files.data_docs_page(identifier, settings)
            except ValueError as exc:
                items.append(Item(f"Data Docs: {suite}", missing=str(exc)))
                continue
            items.append(
                _file_item(f"Data Docs: {suite} ({'passed' if result.get('success') else 'failed'})", page, settings)
            )
    return items


def _summary_at(dataset: catalog.Dataset, ds: str, settings: config.Settings) -> tuple[Path, dict[str, Any] | None]:
    path = dataset.path(ds, settings.lake) / landing.VALIDATION
    return path, _read_json(path)


def _quarantine_items(ds: str, gate: str, settings: config.Settings) -> list[Item]:
    """The quarantined day's summary when it was this gate (or an earlier stage) that failed it."""
    items = []
    for dataset in catalog.QUARANTINES:
        path, summary = _summary_at(dataset, ds, settings)
        if summary is None or (dataset is catalog.QUARANTINE_FEATURES and gate != catalog.FEATURES.gate):
            continue
        if summary.get("gate", catalog.LANDING_FLIGHTS.gate) == gate or summary.get("stage") == "land":
            items += _gate_items(summary, path, settings)
            break
        items.append(Item(f"day quarantined by the {summary.get('gate')} gate", url=files.url_for(path, settings)))
        break
    return items


def landing_section(ds: str, settings: config.Settings) -> Section:
    section = Section(f"ds={ds}: landing")
    section.items.append(
        _file_item(
            "landing manifest",
            catalog.LANDING_FLIGHTS.path(ds, settings.lake) / landing.MANIFEST,
            settings,
        )
    )
    path, summary = _summary_at(catalog.LANDING_FLIGHTS, ds, settings)
    if summary is not None:
        section.items += _gate_items(summary, path, settings)
    else:
        section.items += _quarantine_items(ds, catalog.LANDING_FLIGHTS.gate, settings) or [
            Item("landing gate summary", missing=f"not written yet: {path}")
        ]
    return section


def features_section(ds: str, settings: config.Settings) -> Section:
    section = Section(f"ds={ds}: features")
    published = catalog.FEATURES.path(ds, settings.lake)
    section.items.append(_file_item("features manifest", published / features.MANIFEST, settings))
    summary = _read_json(published / landing.VALIDATION)
    if summary is not None:
        section.items += _gate_items(summary, published / landing.VALIDATION, settings)
    else:
        section.items += _quarantine_items(ds, catalog.FEATURES.gate, settings) or [
            Item("features gate summary", missing=f"not written yet: {published / landing.VALIDATION}")
        ]
    return section


def scoring_section(ds: str, settings: config.Settings) -> Section:
    manifest = catalog.PREDICTIONS.path(ds, settings.lake) / scoring.MANIFEST
    item = _file_item("predictions manifest", manifest, settings)
    payload = _read_json(manifest) or {}
    item.details = [f"{k}: {payload[k]}" for k in ("rows", "model_version", "model_run_id") if k in payload]
    return Section(f"ds={ds}: scoring", [item])


def monitoring_section(ds: str, settings: config.Settings) -> Section:
    report = timeline.report_path(ds, settings)
    return Section(
        f"ds={ds}: monitoring",
        [
            _file_item("Evidently report", report, settings),
            _file_item("monitoring metrics", report.with_name("metrics.json"), settings),
        ],
    )


def training_section(xcoms: dict[str, Any], settings: config.Settings) -> Section:
    """The MLflow run and model version of a train_and_gate group (or a rollback), from the tasks' XCom."""
    section = Section("training")
    trained = xcoms.get("train_and_gate.train_challenger")
    if isinstance(trained, dict):
        name, version = trained.get("model_name") or settings.model_name, trained.get("model_version")
        section.items.append(
            Item(
                f"MLflow run {trained.get('run_id')}",
                url=timeline.mlflow_run_url(settings, trained.get("run_id"), trained.get("experiment_id")),
                details=[f"{k}: {trained[k]}" for k in ("as_of", "window", "metrics") if k in trained],
            )
        )
        section.items.append(
            Item(f"model version {name} v{version}", url=timeline.mlflow_version_url(settings, name, version))
        )
    else:
        section.items.append(
            Item("MLflow run and model version", missing="train_and_gate.train_challenger has no result (XCom) yet")
        )
    validated = xcoms.get("train_and_gate.validate_training_set")
    if isinstance(validated, dict):
        section.items.append(
            Item("training-set gate", details=[f"{k}: {validated[k]}" for k in ("window", "gate") if k in validated])
        )
    decided = xcoms.get("train_and_gate.promote_or_reject") or xcoms.get("rollback_champion")
    if isinstance(decided, dict):
        section.items.append(
            Item(
                f"decision: {decided.get('decision')} (v{decided.get('version')})",
                url=timeline.mlflow_version_url(settings, settings.model_name, decided.get("version")),
                details=[str(decided.get("reason") or "")],
            )
        )
    return section


def _day_sections(kind: str, days: list[str], settings: config.Settings) -> list[Section]:
    build = {
        LANDING: [landing_section],
        FEATURES: [features_section],
        SCORING: [scoring_section],
        MONITORING: [monitoring_section],
    }[kind]
    return [f(ds, settings) for ds in days for f in build]


def task_kind(task_id: str) -> str | None:
    """Which evidence a task id has (None: none)."""
    if task_id in LANDING_TASKS:
        return LANDING
    if task_id in FEATURES_TASKS:
        return FEATURES
    if task_id in SCORING_TASKS:
        return SCORING
    if task_id in MONITORING_TASKS:
        return MONITORING
    if task_id.startswith(TRAINING_GROUP) or task_id == "rollback_champion":
        return TRAINING
    return None


def for_task(run: RunInfo, task_id: str, xcoms: dict[str, Any], settings: config.Settings) -> Evidence:
    """The evidence of one task instance of ``run``."""
    kind = task_kind(task_id)
    days = run_days(run)
    evidence = Evidence(run.dag_id, run.run_id, task_id, days)
    if kind is None:
        evidence.note = f"no evidence for this task: {task_id} writes no report, gate result, manifest or model"
    elif kind == TRAINING:
        evidence.sections.append(training_section(xcoms, settings))
    elif not days:
        evidence.note = (
            f"run {run.run_id} has no logical date, no from_ds/to_ds and no dated asset event: no day to show"
        )
    else:
        evidence.sections = _day_sections(kind, days, settings)
    return evidence


RUN_KINDS = {
    "flights_features": (LANDING, FEATURES),
    "flights_scoring": (SCORING,),
    "flights_monitoring": (MONITORING,),
    "flights_retraining": (MONITORING, TRAINING),
    "flights_training": (TRAINING,),
}


def for_run(run: RunInfo, xcoms: dict[str, Any], settings: config.Settings) -> Evidence:
    """The evidence of a whole run: every kind its DAG produces, for each of its days."""
    days = run_days(run)
    evidence = Evidence(run.dag_id, run.run_id, None, days)
    kinds = RUN_KINDS.get(run.dag_id)
    if kinds is None:
        evidence.note = f"no evidence: {run.dag_id} is not a Flywheel DAG"
        return evidence
    for kind in kinds:
        if kind == TRAINING:
            evidence.sections.append(training_section(xcoms, settings))
        else:
            evidence.sections += _day_sections(kind, days, settings)
    if not days and not evidence.sections:
        evidence.note = (
            f"run {run.run_id} has no logical date, no from_ds/to_ds and no dated asset event: no day to show"
        )
    return evidence
