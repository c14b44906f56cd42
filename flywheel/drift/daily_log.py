"""The monitoring history: one row per monitored day, in ``monitoring/daily/ds=D/``.

Named the daily log so that it is not confused with the promotion history
(:mod:`flywheel.registry.history`, every champion decision) or the features' history windows
(the carriers' and airports' recent delays). The drift policy reads it to count a streak of
signalling days; :func:`write_row` replaces the day's row, so a rerun is safe.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import catalog, config

if TYPE_CHECKING:
    import pandas as pd

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


def read_monitoring_history(settings: config.Settings | None = None) -> pd.DataFrame:
    """Every day's history row, oldest first (an empty frame with the columns before the first day)."""
    import pandas as pd

    settings = settings or config.load()
    days = catalog.MONITORING_LOG.list_partitions(settings.lake)
    if not days:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    frames = [catalog.MONITORING_LOG.read_frame(d, settings.lake) for d in days]
    return pd.concat(frames, ignore_index=True).sort_values("ds", kind="mergesort").reset_index(drop=True)


def row_frame(row: dict[str, Any]) -> pd.DataFrame:
    """A day's row as a one-row frame of the history's columns and dtypes."""
    import pandas as pd

    frame = pd.DataFrame([{c: row[c] for c in HISTORY_COLUMNS}])
    dtypes = {
        "ds": "string", "champion_version": "int64", "drift_share": "float64", "drifted_features": "string",
        "n_drifted": "int64", "prediction_drift": "float64", "roc_auc": "float64", "champion_holdout_auc": "float64",
        "signal": "bool", "decision": "string", "streak": "int64", "report_path": "string",
        "quality_ds": "string", "fired": "string", "mlflow_run_id": "string",
    }  # fmt: skip
    return frame.astype(dtypes)


def write_row(row: dict[str, Any], day: dt.date, settings: config.Settings) -> Path:
    """Publish the day's history row (replacing an earlier one); returns its partition."""
    return catalog.MONITORING_LOG.write_frame(row_frame(row), day, settings.lake)
