"""Daily monitoring: one Evidently report of a scored day against the champion's reference.

``monitor_day(ds)`` compares the day's model inputs (``features/flights/ds=D``) and scores
(``predictions/flights/ds=D``) with the reference of the model version that scored the day:

- data drift of the monitored model features, one test per column (normed Wasserstein distance
  for numbers, Jensen-Shannon distance for categories). Distances, not p-values: with 5000
  reference rows a p-value test flags differences too small to matter. A column drifted when its
  distance reaches its threshold, calibrated per champion (:func:`baseline_thresholds`): the
  distance 95 % of the champion's own training days stay below, at least 0.1;
- prediction drift: the normed Wasserstein distance of ``probability`` (the day's P(delayed)) from
  the champion's scores on its reference rows, divided by its calibrated threshold (1.0 = as far
  as the champion's unusual training days);
- quality: ROC AUC and friends on the labelled day ``D - label_lag_days`` (null, with the reason,
  when that day is not scored yet or has a single label class).

It writes ``reports/monitoring/ds=D/`` (``report.html``, ``metrics.json``), logs both on an MLflow
run ``monitor-D`` (experiment ``<mlflow_experiment>_monitoring``), asks the policy
(:mod:`flywheel.drift.policy`) with the monitoring history, and writes the day's history row
``monitoring/daily/ds=D/``. Every write replaces the day's partition, so a rerun is safe.

The reference (:func:`reference_for_champion`) is the champion's whole training window (train,
validation and holdout days, from the version's ``window`` tag), a seeded sample of
``REFERENCE_ROWS`` rows, scored by that version: what the model learned from and was judged on.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import config, features, lake, schema
from flywheel.drift import policy
from flywheel.training.data import MODEL_FEATURES

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

FEATURES_ZONE = "features"
PREDICTIONS_ZONE = "predictions"
PREDICTIONS_DATASET = "flights"
REPORTS_ZONE = "reports"
REPORTS_DATASET = "monitoring"
HISTORY_ZONE = "monitoring"
HISTORY_DATASET = "daily"
REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
EXPERIMENT_SUFFIX = "_monitoring"
PROBABILITY = "probability"

REFERENCE_ROWS = 5000
NUM_METHOD = "wasserstein"  # Evidently: "Wasserstein distance (normed)", by the reference's std
CAT_METHOD = "jensenshannon"
COLUMN_DRIFT_THRESHOLD = 0.1  # Evidently's default for both distances, and the floor of a calibrated one
# A column's threshold is the distance that this share of the champion's own training days stay below.
BASELINE_QUANTILE = 0.95
# One day holds one value of these by construction, so against a window of days they always
# "drift": they say "this is another day", not "the world changed". Reported, never counted.
DAY_CONSTANT_FEATURES = ("day_of_week", "day_of_year", "is_weekend")
MONITORED_FEATURES: tuple[str, ...] = tuple(c for c in MODEL_FEATURES if c not in DAY_CONSTANT_FEATURES)
# Rows are matched to their predictions on the flight plus its scheduled departure.
JOIN_COLUMNS = (*features.KEY_COLUMNS, "dest", "sched_dep_minutes")
HISTORY_COLUMNS = (
    "ds",
    "champion_version",
    "drift_share",
    "drifted_features",
    "n_drifted",
    "prediction_drift",
    "roc_auc",
    "champion_holdout_auc",
    "signal",
    "decision",
    "streak",
    "report_path",
    "quality_ds",
    "fired",
    "mlflow_run_id",
)


class DriftError(RuntimeError):
    """A day cannot be monitored: missing predictions or features, no champion, or no reference."""


# ---------------------------------------------------------------------------------------------
# Evidently: drift of the inputs and of the scores


def _prepared(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Only the given columns, as float64 and object strings (None for missing), for Evidently."""
    import pandas as pd

    out = pd.DataFrame(index=range(len(frame)))
    for col in numeric:
        out[col] = pd.to_numeric(frame[col], errors="raise").astype("float64").to_numpy()
    for col in categorical:
        values = frame[col].astype(object)
        out[col] = values.where(values.notna(), None).to_numpy()
    return out


def _all_null(frame: pd.DataFrame, col: str) -> bool:
    import numpy as np

    values = frame[col]
    if values.dtype.kind == "f":
        return not np.isfinite(values.to_numpy(dtype="float64")).any()
    return bool(values.isna().all())


def run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: tuple[str, ...] | list[str] | None = None,
    probability: str | None = PROBABILITY,
    thresholds: dict[str, float] | None = None,
) -> tuple[dict[str, Any], Any]:
    """One Evidently Report of ``current`` against ``reference``; returns (metrics, snapshot).

    ``columns`` defaults to :data:`MONITORED_FEATURES`. A column that is entirely null in either
    frame cannot be compared: it is listed in ``skipped_columns`` and left out of the share.
    ``thresholds`` (per column, and for ``probability``; see :func:`baseline_thresholds`) default
    to ``COLUMN_DRIFT_THRESHOLD``. ``prediction_drift`` is the scores' distance divided by their
    threshold: 1.0 means "as far as the champion's unusual training days". Pass ``probability=None``
    when the frames hold no scores.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = list(columns if columns is not None else MONITORED_FEATURES)
    wanted = columns + ([probability] if probability else [])
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise DriftError(f"the {name} frame lacks the columns {missing}")
        if frame.empty:
            raise DriftError(f"the {name} frame has no rows")
    skipped = {
        c: f"all values are null in the {'reference' if _all_null(reference, c) else 'current'} data"
        for c in wanted
        if _all_null(reference, c) or _all_null(current, c)
    }
    categorical = [c for c in columns if c in features.CATEGORICAL_FEATURES and c not in skipped]
    numeric = [c for c in columns if c not in features.CATEGORICAL_FEATURES and c not in skipped]
    scored = bool(probability) and probability not in skipped
    numeric_all = numeric + ([probability] if scored else [])
    compared = categorical + numeric
    if not compared:
        raise DriftError(f"no column can be compared: {skipped}")

    limit = {c: float((thresholds or {}).get(c, COLUMN_DRIFT_THRESHOLD)) for c in [*compared, *numeric_all]}
    definition = DataDefinition(numerical_columns=numeric_all, categorical_columns=categorical)
    items: list[Any] = [
        DataDriftPreset(
            columns=compared,
            num_method=NUM_METHOD,
            cat_method=CAT_METHOD,
            per_column_threshold={c: limit[c] for c in compared},
        )
    ]
    if scored:
        items.append(ValueDrift(column=probability, method=NUM_METHOD, threshold=limit[probability]))
    snapshot = Report(items).run(
        Dataset.from_pandas(_prepared(current, numeric_all, categorical), data_definition=definition),
        Dataset.from_pandas(_prepared(reference, numeric_all, categorical), data_definition=definition),
    )

    scores: dict[str, float] = {}
    methods: dict[str, str] = {}
    for metric in snapshot.dict()["metrics"]:
        cfg = metric["config"]
        if cfg.get("type", "").endswith(":ValueDrift"):
            scores[cfg["column"]] = float(metric["value"])
            methods[cfg["column"]] = str(cfg.get("method"))
    raw_prediction_drift = scores.pop(probability, None) if scored else None
    # Both methods are distances: a column drifted when its score reaches its threshold.
    drifted = [c for c in compared if scores[c] >= limit[c]]
    metrics = {
        "drift_share": len(drifted) / len(compared),
        "n_drifted": len(drifted),
        "n_columns": len(compared),
        "drifted_features": drifted,
        "column_drift": {c: round(scores[c], 6) for c in compared},
        "column_methods": {c: methods[c] for c in compared},
        "column_thresholds": {c: round(limit[c], 6) for c in compared},
        "skipped_columns": {c: r for c, r in skipped.items() if c != probability},
        "prediction_drift": raw_prediction_drift / limit[probability] if scored else None,
        "prediction_drift_distance": raw_prediction_drift,
        "prediction_drift_baseline": limit[probability] if scored else None,
        "prediction_drift_method": methods.get(probability) if scored else None,
        "prediction_drift_skipped": skipped.get(probability) if probability else "no probability column",
        "reference_rows": len(reference),
        "current_rows": len(current),
        "reference_mean_probability": _mean(reference, probability) if scored else None,
        "current_mean_probability": _mean(current, probability) if scored else None,
    }
    return metrics, snapshot


def _mean(frame: pd.DataFrame, col: str) -> float:
    return round(float(frame[col].astype("float64").mean()), 6)


def drift_metrics(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: tuple[str, ...] | list[str] | None = None,
    probability: str | None = PROBABILITY,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Drift share, drifted features, per-column scores and prediction drift (see :func:`run_report`)."""
    return run_report(reference, current, columns, probability, thresholds)[0]


def column_distance(reference: pd.Series, current: pd.Series, categorical: bool) -> float | None:
    """Evidently's distance for one column, computed with scipy (the report's numbers, without its plots).

    Numbers: Wasserstein distance divided by the reference's std (at least 0.001); categories:
    Jensen-Shannon distance of the value shares. None when either side has no value.
    """
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    ref, cur = reference.dropna(), current.dropna()
    if not categorical:
        ref = ref[np.isfinite(ref.astype("float64"))]
        cur = cur[np.isfinite(cur.astype("float64"))]
    if ref.empty or cur.empty:
        return None
    if categorical:
        keys = sorted(set(ref.astype(str)) | set(cur.astype(str)))
        r = ref.astype(str).value_counts(normalize=True).reindex(keys, fill_value=0.0).to_numpy()
        c = cur.astype(str).value_counts(normalize=True).reindex(keys, fill_value=0.0).to_numpy()
        return float(distance.jensenshannon(r, c))
    norm = max(float(np.std(ref.astype("float64"))), 0.001)
    return float(stats.wasserstein_distance(ref.astype("float64"), cur.astype("float64")) / norm)


def baseline_thresholds(
    reference: pd.DataFrame,
    window: pd.DataFrame,
    columns: tuple[str, ...] | list[str] | None = None,
    probability: str | None = PROBABILITY,
    quantile: float = BASELINE_QUANTILE,
) -> dict[str, float]:
    """Per column: the distance that ``quantile`` of the window's days stay below (at least 0.1).

    Why: every flight of a day shares the day's weather and its carriers' and airports' recent
    history, so one day is never distributed like a month. Against its own training window, a
    day of that window is at a normed Wasserstein distance of 0.5 to 2 on weather and history
    columns (measured on January 2013): a fixed 0.1 flags 70 % of the columns every day. A day
    is drifted on a column only when it is further than the champion's own unusual days were.
    """
    import numpy as np

    columns = list(columns if columns is not None else MONITORED_FEATURES)
    names = columns + ([probability] if probability and probability in window.columns else [])
    days = [frame for _, frame in window.groupby(window["ds"].astype(str), sort=True)]
    out: dict[str, float] = {}
    for col in names:
        categorical = col in features.CATEGORICAL_FEATURES
        values = [column_distance(reference[col], day[col], categorical) for day in days]
        known = [v for v in values if v is not None]
        level = float(np.quantile(known, quantile)) if known else COLUMN_DRIFT_THRESHOLD
        out[col] = round(max(COLUMN_DRIFT_THRESHOLD, level), 6)
    return out


def quality_metrics(frame: pd.DataFrame | None, reason_if_none: str = "no labelled predictions") -> dict[str, Any]:
    """ROC AUC, PR AUC, log loss, Brier and the decision's F1 on labelled predictions.

    ``roc_auc`` is None, with ``quality_reason``, when there are no labels or a single class
    (ROC AUC is undefined then).
    """
    import numpy as np
    from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, log_loss, roc_auc_score

    if frame is None:
        return {"roc_auc": None, "quality_reason": reason_if_none, "labelled_rows": 0}
    labelled = frame.loc[frame[schema.LABEL].notna()]
    y = labelled[schema.LABEL].to_numpy(dtype="int64")
    p = labelled[PROBABILITY].to_numpy(dtype="float64")
    out: dict[str, Any] = {"labelled_rows": len(y), "base_rate": float(y.mean()) if len(y) else None}
    classes = np.unique(y)
    if len(classes) < 2:
        what = "no labelled row" if len(y) == 0 else f"a single label class ({int(classes[0])}) in {len(y)} rows"
        return {**out, "roc_auc": None, "quality_reason": f"ROC AUC is undefined: {what}"}
    out.update(
        roc_auc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        brier=float(brier_score_loss(y, p)),
        mean_prediction=float(p.mean()),
        quality_reason=None,
    )
    if "decision" in labelled.columns:
        out["f1"] = float(f1_score(y, labelled["decision"].to_numpy(dtype="int64"), zero_division=0))
    return out


# ---------------------------------------------------------------------------------------------
# The champion's reference


_REFERENCE_CACHE: dict[tuple[str, str, int, str, int], tuple[pd.DataFrame, dict[str, Any]]] = {}
_CACHE_LOCK = threading.Lock()


def _training_window(client: MlflowClient, mv: Any) -> tuple[dt.date, dt.date, str]:
    """The version's training window from its ``window`` tag, else its run's ``window`` param."""
    raw = (mv.tags or {}).get("window")
    where = "model version tag 'window'"
    if not raw and mv.run_id:
        raw = client.get_run(mv.run_id).data.params.get("window")
        where = f"param 'window' of run {mv.run_id}"
    if not raw or ".." not in raw:
        raise DriftError(
            f"model {mv.name} v{mv.version} has no training window (tag or run param 'window' = 'start..end'): "
            "it was not registered by flywheel.training, so it has no reference to monitor against"
        )
    start, end = raw.split("..", 1)
    return lake.parse_ds(start), lake.parse_ds(end), where


def _holdout_auc(client: MlflowClient, mv: Any) -> float | None:
    raw = (mv.tags or {}).get("metric.roc_auc")
    if raw is None and mv.run_id:
        raw = client.get_run(mv.run_id).data.metrics.get("roc_auc")
    return float(raw) if raw is not None else None


def reference_for_champion(
    settings: config.Settings | None = None, version: int | None = None, rows: int = REFERENCE_ROWS
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference frame of a model version (default: the champion) and where it came from.

    The frame: a sample (``rows``, seeded by ``settings.seed``) of the version's whole training
    window, with the model inputs, the label and ``probability`` scored by that version. The info
    holds the window, the champion's holdout ROC AUC and the per-column ``thresholds``
    (:func:`baseline_thresholds` over the window's days). Cached per version in this process.
    """
    from flywheel.registry.client import CHAMPION, alias_version, connect, get_version, load_model
    from flywheel.training import data, model

    settings = settings or config.load()
    client = connect(settings)
    name = settings.model_name
    if version is None:
        version = alias_version(client, name, CHAMPION)
        if version is None:
            raise DriftError(
                f"no champion: registered model {name!r} has no {CHAMPION!r} alias. Run flights_training first."
            )
    key = (settings.mlflow_tracking_uri, name, int(version), str(settings.lake), rows)
    with _CACHE_LOCK:
        cached = _REFERENCE_CACHE.get(key)
    if cached is not None:
        return cached[0].copy(), {**cached[1], "cached": True}

    mv = get_version(client, name, int(version))
    start, end, window_source = _training_window(client, mv)
    window_days = (end - start).days + 1
    try:
        ts = data.assemble(end, window_days, settings, allow_missing=True)
    except data.TrainingDataError as exc:
        raise DriftError(f"cannot build the reference of {name} v{version} (window {start}..{end}): {exc}") from exc
    frame = ts.frame.loc[:, list(dict.fromkeys(["ds", *features.KEY_COLUMNS, *MODEL_FEATURES, schema.LABEL]))]
    frame[PROBABILITY] = model.predict_proba(load_model(name, int(version)), frame)
    sample = frame.sample(n=rows, random_state=settings.seed) if len(frame) > rows else frame
    sample = sample.sort_values(list(features.KEY_COLUMNS), kind="mergesort").reset_index(drop=True)
    thresholds = baseline_thresholds(sample, frame)
    info = {
        "model_name": name,
        "version": int(version),
        "run_id": mv.run_id,
        "window": f"{start.isoformat()}..{end.isoformat()}",
        "window_source": window_source,
        "part": "whole training window (train + validation + holdout days)",
        "days": len(ts.days),
        "missing_days": [d.isoformat() for d in ts.missing_days],
        "window_rows": len(frame),
        "rows": len(sample),
        "sample_seed": settings.seed,
        "champion_holdout_auc": _holdout_auc(client, mv),
        "holdout": f"{(mv.tags or {}).get('holdout_start')}..{(mv.tags or {}).get('holdout_end')}",
        "thresholds": thresholds,
        "thresholds_rule": f"per column: the {BASELINE_QUANTILE:.0%} quantile of the window's daily distances "
        f"to the reference, at least {COLUMN_DRIFT_THRESHOLD}",
    }
    with _CACHE_LOCK:
        _REFERENCE_CACHE[key] = (sample, info)
    return sample.copy(), {**info, "cached": False}


def clear_reference_cache() -> None:
    with _CACHE_LOCK:
        _REFERENCE_CACHE.clear()


# ---------------------------------------------------------------------------------------------
# One day


def _read_predictions(day: dt.date, settings: config.Settings) -> pd.DataFrame | None:
    if not lake.exists(PREDICTIONS_ZONE, PREDICTIONS_DATASET, day, settings.lake):
        return None
    return lake.read_frame(PREDICTIONS_ZONE, PREDICTIONS_DATASET, day, settings.lake)


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["ds"] = out["ds"].astype(str)
    for col in ("carrier", "origin", "dest"):
        out[col] = out[col].astype(object)
    for col in ("flight", "sched_dep_minutes"):
        out[col] = out[col].astype("int64")
    return out


def current_frame(day: dt.date, settings: config.Settings) -> tuple[pd.DataFrame, int]:
    """Day D's model inputs joined to its predictions; returns (frame, the version that scored it)."""
    from pandas.errors import MergeError

    predictions = _read_predictions(day, settings)
    if predictions is None:
        raise DriftError(
            f"cannot monitor ds={day}: predictions partition "
            f"{lake.partition_path(PREDICTIONS_ZONE, PREDICTIONS_DATASET, day, settings.lake)} does not exist. "
            "Run flights_scoring for that day first."
        )
    if not lake.exists(FEATURES_ZONE, features.DATASET, day, settings.lake):
        raise DriftError(
            f"cannot monitor ds={day}: features partition "
            f"{lake.partition_path(FEATURES_ZONE, features.DATASET, day, settings.lake)} does not exist "
            "although its predictions do. Rebuild the features (flights_features), then rescore the day."
        )
    feats = lake.read_frame(FEATURES_ZONE, features.DATASET, day, settings.lake)
    versions = sorted(int(v) for v in predictions["model_version"].unique())
    if len(versions) != 1:
        raise DriftError(f"predictions ds={day} were made by versions {versions}; rescore the day (flights_scoring)")
    scored = _keys(predictions.loc[:, [*JOIN_COLUMNS, PROBABILITY, "decision"]])
    inputs = _keys(feats.loc[:, [*JOIN_COLUMNS, *(c for c in MODEL_FEATURES if c not in JOIN_COLUMNS), schema.LABEL]])
    try:
        frame = inputs.merge(scored, on=list(JOIN_COLUMNS), how="inner", validate="one_to_one")
    except MergeError as exc:
        raise DriftError(
            f"ds={day}: features and predictions do not match one to one ({exc}); rescore the day"
        ) from exc
    if len(frame) != len(predictions) or len(frame) != len(feats):
        raise DriftError(
            f"ds={day}: {len(feats)} features rows, {len(predictions)} predictions, {len(frame)} matched: "
            "the predictions are stale (the features were rebuilt after scoring); rescore the day (flights_scoring)"
        )
    return frame, versions[0]


def _quality_frame(
    day: dt.date, current: pd.DataFrame, settings: config.Settings, version: int
) -> tuple[pd.DataFrame | None, dt.date, str]:
    """Labelled predictions of the quality window: ``quality_window_days`` days ending at D - label lag,
    scored by the monitored version (other versions' rows would mix two models' quality)."""
    import pandas as pd

    lag = settings.label_lag_days
    quality_day = day - dt.timedelta(days=lag)
    window = [quality_day - dt.timedelta(days=n) for n in range(settings.quality_window_days - 1, -1, -1)]
    frames = []
    for d in window:
        if d == day and lag == 0:
            frames.append(current)  # joined inputs and predictions of D, all scored by `version`
            continue
        frame = _read_predictions(d, settings)
        if frame is not None:
            frames.append(frame.loc[frame["model_version"].astype(int) == int(version)])
    days_found = sum(len(f) > 0 for f in frames)
    note = (
        f"labels of {days_found} scored day(s) in {window[0]}..{quality_day} "
        f"(quality window {settings.quality_window_days} days, label lag {lag} days)"
    )
    if not frames or days_found == 0:
        return None, quality_day, note
    return pd.concat(frames, ignore_index=True), quality_day, note


def _experiment(settings: config.Settings, client: MlflowClient) -> str:
    from mlflow.exceptions import MlflowException

    name = settings.mlflow_experiment + EXPERIMENT_SUFFIX
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=settings.experiment_artifact_location("monitoring"))
    except MlflowException:
        # Another day's task created it meanwhile.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _write_and_log(settings: config.Settings, day: dt.date, payload: dict[str, Any], snapshot: Any) -> Path:
    """Publish ``reports/monitoring/ds=D/`` and log it on the MLflow run ``monitor-D`` (params, metrics, files).

    The run is started first so that ``metrics.json`` names it; a failed write fails the run.
    """
    import mlflow

    from flywheel.registry.client import connect

    client = connect(settings)
    experiment_id = _experiment(settings, client)
    row = payload["row"]
    tags = {
        "flywheel.kind": "monitoring",
        "flywheel.ds": day.isoformat(),
        "flywheel.champion_version": str(row["champion_version"]),
        "flywheel.decision": row["decision"],
        "flywheel.signal": str(row["signal"]).lower(),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor-{day.isoformat()}", tags=tags) as run:
        row["mlflow_run_id"] = run.info.run_id
        with lake.staged_partition(REPORTS_ZONE, REPORTS_DATASET, day, settings.lake) as staging:
            snapshot.save_html(str(staging / REPORT_FILE))
            (staging / METRICS_FILE).write_text(json.dumps(_jsonable(payload), indent=2, sort_keys=True, default=str))
        report_dir = lake.partition_path(REPORTS_ZONE, REPORTS_DATASET, day, settings.lake)
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
        mlflow.log_artifact(str(report_dir / REPORT_FILE))
        mlflow.log_artifact(str(report_dir / METRICS_FILE))
    return report_dir


def read_monitoring_history(settings: config.Settings | None = None) -> pd.DataFrame:
    """Every day's history row, oldest first (an empty frame with the columns before the first day)."""
    import pandas as pd

    settings = settings or config.load()
    days = lake.list_partitions(HISTORY_ZONE, HISTORY_DATASET, settings.lake)
    if not days:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    frames = [lake.read_frame(HISTORY_ZONE, HISTORY_DATASET, d, settings.lake) for d in days]
    return pd.concat(frames, ignore_index=True).sort_values("ds", kind="mergesort").reset_index(drop=True)


def _history_frame(row: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([{c: row[c] for c in HISTORY_COLUMNS}])
    dtypes = {
        "ds": "string", "champion_version": "int64", "drift_share": "float64", "drifted_features": "string",
        "n_drifted": "int64", "prediction_drift": "float64", "roc_auc": "float64", "champion_holdout_auc": "float64",
        "signal": "bool", "decision": "string", "streak": "int64", "report_path": "string",
        "quality_ds": "string", "fired": "string", "mlflow_run_id": "string",
    }  # fmt: skip
    return frame.astype(dtypes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def monitor_day(ds: str | dt.date, settings: config.Settings | None = None) -> dict[str, Any]:
    """Monitor one scored day; returns the history row, the policy's evidence and the paths (JSON-able)."""
    settings = settings or config.load()
    day = lake.parse_ds(ds)
    current, version = current_frame(day, settings)
    reference, ref_info = reference_for_champion(settings, version=version)

    quality_source, quality_day, quality_note = _quality_frame(day, current, settings, version)
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
    history = read_monitoring_history(settings)
    decision = policy.decide(history.to_dict("records"), signal, settings)

    report_dir = lake.partition_path(REPORTS_ZONE, REPORTS_DATASET, day, settings.lake)
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
        "report_path": str(report_dir / REPORT_FILE),
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
    _write_and_log(settings, day, payload, snapshot)
    history_path = lake.write_frame(_history_frame(row), HISTORY_ZONE, HISTORY_DATASET, day, settings.lake)
    return _jsonable(
        {
            **payload,
            "paths": {
                "report": str(report_dir / REPORT_FILE),
                "metrics": str(report_dir / METRICS_FILE),
                "history": str(history_path),
            },
        }
    )


def _champion_now(settings: config.Settings) -> int | None:
    from flywheel.registry.client import CHAMPION, alias_version, connect

    return alias_version(connect(settings), settings.model_name, CHAMPION)
