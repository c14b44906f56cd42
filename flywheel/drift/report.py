"""The Evidently report of a day against a reference: input drift and score drift.

:func:`run_report` runs one Evidently ``Report`` over the monitored model features (one test per
column: normed Wasserstein distance for numbers, Jensen-Shannon distance for categories) and the
scores' column ``probability``, and takes the drift metrics out of it. Distances, not p-values:
with 5000 reference rows a p-value test flags differences too small to matter. A column drifted
when its distance reaches its threshold (per column, see
:func:`flywheel.drift.reference.baseline_thresholds`); prediction drift is the scores' distance
divided by its threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel import features
from flywheel.drift import DriftError
from flywheel.training.data import MODEL_FEATURES

if TYPE_CHECKING:
    import pandas as pd

PROBABILITY = "probability"
NUM_METHOD = "wasserstein"  # Evidently: "Wasserstein distance (normed)", by the reference's std
CAT_METHOD = "jensenshannon"
COLUMN_DRIFT_THRESHOLD = 0.1  # Evidently's default for both distances, and the floor of a calibrated one
# One day holds one value of these by construction, so against a window of days they always
# "drift": they say "this is another day", not "the world changed". Reported, never counted.
DAY_CONSTANT_FEATURES = ("day_of_week", "day_of_year", "is_weekend")
MONITORED_FEATURES: tuple[str, ...] = tuple(c for c in MODEL_FEATURES if c not in DAY_CONSTANT_FEATURES)


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
    ``thresholds`` (per column, and for ``probability``; see
    :func:`flywheel.drift.reference.baseline_thresholds`) default
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
