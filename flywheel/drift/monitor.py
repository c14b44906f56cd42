"""Daily monitoring: one Evidently report of a scored day against the champion's reference.

``monitor_day(ds)`` compares the day's model inputs (``features/flights/ds=D``) and scores
(``predictions/flights/ds=D``, :mod:`flywheel.drift.scored_day`) with the reference of the model
version that scored the day (:mod:`flywheel.drift.reference`):

- data drift of the monitored model features, one test per column, and prediction drift of the
  day's P(delayed), each against its threshold calibrated per champion (:mod:`flywheel.drift.report`);
- quality: ROC AUC and friends on the labelled day ``D - label_lag_days`` (null, with the reason,
  when that day is not scored yet or has a single label class; :mod:`flywheel.drift.quality`).

It writes ``reports/monitoring/ds=D/`` (``report.html``, ``metrics.json``), logs both on an MLflow
run ``monitor-D`` (:mod:`flywheel.drift.publish`), asks the policy (:mod:`flywheel.drift.policy`)
with the monitoring history, and writes the day's history row ``monitoring/daily/ds=D/``
(:mod:`flywheel.drift.daily_log`). Every write replaces the day's partition, so a rerun is safe.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flywheel import config, lake
from flywheel.drift import daily_log, policy, publish
from flywheel.drift.quality import quality_frame, quality_metrics
from flywheel.drift.reference import reference_for_champion
from flywheel.drift.report import DAY_CONSTANT_FEATURES, run_report
from flywheel.drift.scored_day import current_frame


def monitor_day(ds: str | dt.date, settings: config.Settings | None = None) -> dict[str, Any]:
    """Monitor one scored day; returns the history row, the policy's evidence and the paths (JSON-able)."""
    settings = settings or config.load()
    day = lake.parse_ds(ds)
    current, version = current_frame(day, settings)
    reference, ref_info = reference_for_champion(settings, version=version)

    quality_source, quality_day, quality_note = quality_frame(day, current, settings, version)
    quality = quality_metrics(
        quality_source, reason_if_none=f"predictions ds={quality_day} do not exist (not scored yet)"
    )
    drift, snapshot = run_report(reference, current, thresholds=ref_info["thresholds"])

    champion_now = _champion_now(settings)
    signal = policy.day_signal(
        {
            "ds": day.isoformat(),
            "champion_version": version,
            **drift,
            "roc_auc": quality.get("roc_auc"),
            "quality_ds": quality_day.isoformat(),
        },
        ref_info["champion_holdout_auc"],
        settings,
    )
    history = daily_log.read_monitoring_history(settings)
    decision = policy.decide_drift(history.to_dict("records"), signal, settings)

    report_dir = publish.report_dir(day, settings)
    row = {
        "ds": day.isoformat(),
        "champion_version": version,
        "drift_share": drift["drift_share"],
        "drifted_features": ",".join(drift["drifted_features"]),
        "n_drifted": drift["n_drifted"],
        "prediction_drift": drift["prediction_drift"],
        "roc_auc": quality.get("roc_auc"),
        "champion_holdout_auc": ref_info["champion_holdout_auc"],
        "signal": signal.signal,
        "decision": decision.decision,
        "streak": decision.streak,
        "report_path": str(report_dir / publish.REPORT_FILE),
        "quality_ds": quality_day.isoformat(),
        "fired": ",".join(signal.fired),
        "mlflow_run_id": "",
    }
    payload: dict[str, Any] = {
        "row": row,
        "evidence": decision.evidence(),
        "drift": drift,
        "quality": {**quality, "ds": quality_day.isoformat(), "note": quality_note},
        "reference": {k: v for k, v in ref_info.items() if k != "cached"},
        "scored_by": version,
        "champion_now": champion_now,
        "thresholds": {
            "drift_share_threshold": settings.drift_share_threshold,
            "prediction_drift_threshold": settings.prediction_drift_threshold,
            "quality_drop": settings.quality_drop,
            "drift_consecutive_days": settings.drift_consecutive_days,
            "column_thresholds": ref_info["thresholds_rule"],
            "excluded_features": list(DAY_CONSTANT_FEATURES),
        },
    }
    if champion_now is not None and champion_now != version:
        payload["note"] = (
            f"ds={day} was scored by v{version}; the champion is now v{champion_now}. "
            f"Monitored against v{version}'s reference; rescore the day to monitor v{champion_now}."
        )
    publish.write_and_log(settings, day, payload, snapshot)
    history_path = daily_log.write_row(row, day, settings)
    return publish.jsonable(
        {
            **payload,
            "paths": {
                "report": str(report_dir / publish.REPORT_FILE),
                "metrics": str(report_dir / publish.METRICS_FILE),
                "history": str(history_path),
            },
        }
    )


def _champion_now(settings: config.Settings) -> int | None:
    from flywheel.registry.client import CHAMPION, alias_version, connect

    return alias_version(connect(settings), settings.model_name, CHAMPION)
