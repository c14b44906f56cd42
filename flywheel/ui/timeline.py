"""The champion timeline (promotion history) and the monitoring timeline (one row per monitored day)."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

from flywheel import catalog, config, landing
from flywheel.drift import daily_log, publish
from flywheel.ui import files

# Holdout metrics shown per version (all of them are in the history record and in MLflow).
SHOWN_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "f1")
DECISION_LABELS = {"promoted": "promoted", "rejected": "rejected", "rollback": "rolled back", "failed": "retraining failed"}


def mlflow_ui_base(settings: config.Settings) -> str:
    """Where links to the MLflow UI point: the stack's server (either profile) through the plugin, on
    Airflow's own origin (``config.MLFLOW_PATH``); an MLflow server of the user's directly."""
    return config.MLFLOW_PATH if settings.mlflow_stack_server else settings.mlflow_tracking_uri.rstrip("/")


def mlflow_run_url(settings: config.Settings, run_id: str | None, experiment_id: str | None = None) -> str | None:
    """The MLflow UI page of a run (MLflow's ``#/runs/<id>`` redirects to its experiment when it is unknown)."""
    if not run_id:
        return None
    base = mlflow_ui_base(settings)
    if experiment_id:
        return f"{base}/#/experiments/{quote(str(experiment_id))}/runs/{quote(run_id)}"
    return f"{base}/#/runs/{quote(run_id)}"


def mlflow_version_url(settings: config.Settings, name: str | None, version: Any) -> str | None:
    """The MLflow UI page of a registered model version."""
    if not name or version in (None, ""):
        return None
    return f"{mlflow_ui_base(settings)}/#/models/{quote(str(name))}/versions/{quote(str(version))}"


def _number(value: Any) -> float | None:
    """A finite float, or None (history and parquet hold NaN for "not measured")."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def champion_rows(records: list[dict[str, Any]], settings: config.Settings) -> list[dict[str, Any]]:
    """One row per promotion-history record, oldest first: who became (or stayed) champion, when and why."""
    rows = []
    for record in records:
        run = record.get("run") or {}
        challenger = (record.get("metrics") or {}).get("challenger") or {}
        name = record.get("model") or settings.model_name
        mlflow_run_id = run.get("mlflow_run_id")
        rows.append(
            {
                "as_of": record.get("as_of"),
                "version": record.get("version"),
                "source": record.get("source"),
                "decision": DECISION_LABELS.get(record.get("decision"), record.get("decision")),
                "reason": record.get("reason"),
                "champion_before": record.get("champion_before"),
                "champion_after": record.get("champion_after"),
                "metrics": {k: _number(challenger.get(k)) for k in SHOWN_METRICS if k in challenger},
                "airflow": {k: run.get(k) for k in ("dag_id", "run_id", "task_id") if run.get(k)},
                "mlflow_run_id": mlflow_run_id,
                "mlflow_run_url": mlflow_run_url(settings, mlflow_run_id, run.get("experiment_id")),
                "mlflow_version_url": mlflow_version_url(settings, name, record.get("version")),
            }
        )
    return rows


def retraining_dates(records: list[dict[str, Any]]) -> list[str]:
    """The as-of dates of drift-triggered retrainings, in order, once each."""
    return sorted({str(r["as_of"]) for r in records if r.get("source") == "retraining" and r.get("as_of")})


def report_path(ds: str, settings: config.Settings) -> Any:
    """Where the monitoring of day ``ds`` wrote its Evidently report."""
    return publish.report_dir(ds, settings) / publish.REPORT_FILE


def monitoring_rows(history: list[dict[str, Any]], settings: config.Settings) -> list[dict[str, Any]]:
    """One row per monitored day, oldest first, with the quality threshold of the day's champion and the report link."""
    rows = []
    for entry in sorted(history, key=lambda r: str(r.get("ds"))):
        ds = str(entry["ds"])
        holdout = _number(entry.get("champion_holdout_auc"))
        report = report_path(ds, settings)
        version = entry.get("champion_version")
        rows.append(
            {
                "ds": ds,
                "champion_version": None if version is None else int(version),
                "drift_share": _number(entry.get("drift_share")),
                "prediction_drift": _number(entry.get("prediction_drift")),
                "roc_auc": _number(entry.get("roc_auc")),
                "champion_holdout_auc": holdout,
                "quality_threshold": None if holdout is None else round(holdout - settings.quality_drop, 6),
                "signal": bool(entry.get("signal")),
                "decision": entry.get("decision"),
                "fired": [f for f in str(entry.get("fired") or "").split(",") if f],
                "report_url": files.url_for(report, settings) if report.is_file() else None,
                "data_docs": gate_docs(ds, settings),
            }
        )
    return rows


def gate_docs(ds: str, settings: config.Settings) -> list[dict[str, str]]:
    """The Data Docs pages of the day's passed gates (landing, then features): ``[{suite, url}]``.

    Read from the gate summaries published beside the partitions; a page not rendered (yet) is left out.
    """
    out = []
    for dataset in (catalog.LANDING_FLIGHTS, catalog.FEATURES):
        path = dataset.path(ds, settings.lake) / landing.VALIDATION
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for suite, result in sorted((summary.get("suites") or {}).items()):
            for identifier in result.get("validation_results") or []:
                try:
                    page = files.data_docs_page(str(identifier), settings)
                except ValueError:
                    continue
                url = files.url_for(page, settings) if page.is_file() else None
                if url:
                    out.append({"suite": suite, "url": url})
    return out


def thresholds(settings: config.Settings) -> dict[str, float]:
    """The policy's thresholds as the charts draw them."""
    return {
        "drift_share": settings.drift_share_threshold,
        "prediction_drift": settings.prediction_drift_threshold,
        "quality_drop": settings.quality_drop,
        "drift_consecutive_days": settings.drift_consecutive_days,
    }


def read_monitoring(settings: config.Settings) -> list[dict[str, Any]]:
    """The monitoring history as plain records ([] before the first monitored day)."""
    frame = daily_log.read_monitoring_history(settings)
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
