"""The champion's reference data and the per-column drift thresholds calibrated on it.

The reference (:func:`reference_for_champion`) is the champion's whole training window (train,
validation and holdout days, from the version's ``window`` tag), a seeded sample of
``REFERENCE_ROWS`` rows, scored by that version: what the model learned from and was judged on.
A column drifted when its distance reaches its threshold, calibrated per champion
(:func:`baseline_thresholds`): the distance 95 % of the champion's own training days stay below,
at least 0.1.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Any

from flywheel import config, features, lake, schema
from flywheel.drift import DriftError
from flywheel.drift.report import COLUMN_DRIFT_THRESHOLD, MONITORED_FEATURES, PROBABILITY
from flywheel.training.data import MODEL_FEATURES

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

REFERENCE_ROWS = 5000
# A column's threshold is the distance that this share of the champion's own training days stay below.
BASELINE_QUANTILE = 0.95


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
    """Forget the references cached in this process."""
    with _CACHE_LOCK:
        _REFERENCE_CACHE.clear()
