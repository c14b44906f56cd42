"""How two model versions score the same days: the old champion vs its successor, after a retraining."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flywheel import catalog, config, schema


def versions_on_days(
    days: list[dt.date], versions: list[int], settings: config.Settings | None = None
) -> list[dict[str, Any]]:
    """ROC AUC of each version on each day's features (labels known), plus a pooled ``all`` row."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from flywheel.registry.client import load_model
    from flywheel.training.model import predict_proba

    settings = settings or config.load()
    models = {v: load_model(settings.model_name, v) for v in versions}
    rows: list[dict[str, Any]] = []
    pooled: dict[int, list[np.ndarray]] = {v: [] for v in versions}
    labels: list[np.ndarray] = []
    for day in days:
        if not catalog.FEATURES.exists(day, settings.lake):
            continue
        frame = catalog.FEATURES.read_frame(day, settings.lake)
        y = frame[schema.LABEL].to_numpy()
        row: dict[str, Any] = {"ds": day.isoformat(), "rows": len(frame)}
        labels.append(y)
        for v, model in models.items():
            p = predict_proba(model, frame)
            pooled[v].append(p)
            row[f"v{v}"] = round(float(roc_auc_score(y, p)), 4) if len(set(y)) == 2 else None
        rows.append(row)
    if labels:
        y_all = np.concatenate(labels)
        total: dict[str, Any] = {"ds": "all", "rows": int(len(y_all))}
        for v in versions:
            total[f"v{v}"] = round(float(roc_auc_score(y_all, np.concatenate(pooled[v]))), 4)
        rows.append(total)
    return pd.DataFrame(rows).to_dict("records")
