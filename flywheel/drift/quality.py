"""Model quality on labelled days: ROC AUC and friends on the predictions whose labels are known.

A day D is judged on the quality window: ``quality_window_days`` scored days ending at
``D - label_lag_days``, only the rows the monitored model version scored (null, with the reason,
when none of those days is scored yet or the labels hold a single class).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from flywheel import config, schema
from flywheel.drift.report import PROBABILITY
from flywheel.drift.scored_day import read_predictions

if TYPE_CHECKING:
    import pandas as pd


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


def quality_frame(
    day: dt.date, current: pd.DataFrame, settings: config.Settings, version: int
) -> tuple[pd.DataFrame | None, dt.date, str]:
    """Labelled predictions of the quality window: ``quality_window_days`` days ending at D - label lag,
    scored by the monitored version (other versions' rows would mix two models' quality).

    Returns (the rows, None when no day of the window is scored; the quality day; a note naming the window)."""
    import pandas as pd

    lag = settings.label_lag_days
    quality_day = day - dt.timedelta(days=lag)
    window = [quality_day - dt.timedelta(days=n) for n in range(settings.quality_window_days - 1, -1, -1)]
    frames = []
    for d in window:
        if d == day and lag == 0:
            frames.append(current)  # joined inputs and predictions of D, all scored by `version`
            continue
        frame = read_predictions(d, settings)
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
