"""Publish a monitored day: ``reports/monitoring/ds=D/`` (``report.html``, ``metrics.json``) in the
lake, both logged on the MLflow run ``monitor-D`` of the experiment ``<mlflow_experiment>_monitoring``."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import catalog, config
from flywheel.drift.reference import BASELINE_QUANTILE
from flywheel.drift.report import CAT_METHOD, NUM_METHOD

if TYPE_CHECKING:
    from mlflow import MlflowClient

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
EXPERIMENT_SUFFIX = "_monitoring"
# The MLflow runs' kind tag and their artifact folder.
RUN_KIND = "monitoring"  # not a lake zone


def report_dir(day: str | dt.date, settings: config.Settings) -> Path:
    """Where the monitoring of ``day`` writes its report and metrics."""
    return catalog.MONITORING_REPORTS.path(day, settings.lake)


def _experiment(settings: config.Settings, client: MlflowClient) -> str:
    from mlflow.exceptions import MlflowException

    name = settings.mlflow_experiment + EXPERIMENT_SUFFIX
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=settings.experiment_artifact_location(RUN_KIND))
    except MlflowException:
        # Another day's task created it meanwhile.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def write_and_log(settings: config.Settings, day: dt.date, payload: dict[str, Any], snapshot: Any) -> Path:
    """Publish ``reports/monitoring/ds=D/`` and log it on the MLflow run ``monitor-D`` (params, metrics, files).

    The run is started first so that ``metrics.json`` names it; a failed write fails the run.
    """
    import mlflow

    from flywheel.registry.client import connect

    client = connect(settings)
    experiment_id = _experiment(settings, client)
    row = payload["row"]
    tags = {
        "flywheel.kind": RUN_KIND,
        "flywheel.ds": day.isoformat(),
        "flywheel.champion_version": str(row["champion_version"]),
        "flywheel.decision": row["decision"],
        "flywheel.signal": str(row["signal"]).lower(),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor-{day.isoformat()}", tags=tags) as run:
        row["mlflow_run_id"] = run.info.run_id
        with catalog.MONITORING_REPORTS.staged(day, settings.lake) as staging:
            snapshot.save_html(str(staging / REPORT_FILE))
            (staging / METRICS_FILE).write_text(json.dumps(jsonable(payload), indent=2, sort_keys=True, default=str))
        published = report_dir(day, settings)
        mlflow.log_params(
            {
                "ds": day.isoformat(),
                "model_name": settings.model_name,
                "champion_version": row["champion_version"],
                "reference_window": payload["reference"]["window"],
                "reference_rows": payload["reference"]["rows"],
                "quality_ds": row["quality_ds"],
                "label_lag_days": settings.label_lag_days,
                "drift_share_threshold": settings.drift_share_threshold,
                "prediction_drift_threshold": settings.prediction_drift_threshold,
                "quality_drop": settings.quality_drop,
                "drift_consecutive_days": settings.drift_consecutive_days,
                "column_threshold_quantile": BASELINE_QUANTILE,
                "num_method": NUM_METHOD,
                "cat_method": CAT_METHOD,
            }
        )
        metrics = {
            "drift_share": row["drift_share"],
            "n_drifted": row["n_drifted"],
            "prediction_drift": row["prediction_drift"],
            "roc_auc": row["roc_auc"],
            "champion_holdout_auc": row["champion_holdout_auc"],
            "signal": float(row["signal"]),
            "streak": row["streak"],
            **{f"drift.{c}": v for c, v in payload["drift"]["column_drift"].items()},
            **{f"quality.{k}": v for k, v in payload["quality"].items() if isinstance(v, int | float)},
        }
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))})
        mlflow.log_artifact(str(published / REPORT_FILE))
        mlflow.log_artifact(str(published / METRICS_FILE))
    return published


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as None, through dicts and lists (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
