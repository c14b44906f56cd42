"""A scored day's rows: its model inputs (``features/flights/ds=D``) joined to its predictions
(``predictions/flights/ds=D``), checked to match one to one and to come from one model version."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from flywheel import catalog, config, features, schema
from flywheel.drift import DriftError
from flywheel.drift.report import PROBABILITY
from flywheel.training.data import MODEL_FEATURES

if TYPE_CHECKING:
    import pandas as pd

# Rows are matched to their predictions on the flight plus its scheduled departure.
JOIN_COLUMNS = (*features.KEY_COLUMNS, "dest", "sched_dep_minutes")


def read_predictions(day: dt.date, settings: config.Settings) -> pd.DataFrame | None:
    """The day's predictions partition, or None when the day is not scored."""
    if not catalog.PREDICTIONS.exists(day, settings.lake):
        return None
    return catalog.PREDICTIONS.read_frame(day, settings.lake)


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    """The join columns with one dtype each, so that features and predictions rows meet."""
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

    predictions = read_predictions(day, settings)
    if predictions is None:
        raise DriftError(
            f"cannot monitor ds={day}: predictions partition "
            f"{catalog.PREDICTIONS.path(day, settings.lake)} does not exist. "
            "Run flights_scoring for that day first."
        )
    if not catalog.FEATURES.exists(day, settings.lake):
        raise DriftError(
            f"cannot monitor ds={day}: features partition "
            f"{catalog.FEATURES.path(day, settings.lake)} does not exist "
            "although its predictions do. Rebuild the features (flights_features), then rescore the day."
        )
    feats = catalog.FEATURES.read_frame(day, settings.lake)
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
