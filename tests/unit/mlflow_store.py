"""Test helper: a throw-away MLflow store per test, and tiny models registered as versions.

Creating an MLflow SQLite database runs every migration (~10 s), so one empty database is
made per session and copied into each test's FLYWHEEL_HOME (where config.load() expects it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from flywheel import config

# Beside the session's FLYWHEEL_HOME (tests/conftest.py), so it goes when the session's temp folder goes.
_TEMPLATE = Path(os.environ.get("FLYWHEEL_HOME") or tempfile.mkdtemp()).parent / "mlflow-template.db"


def _template_db() -> Path:
    if not _TEMPLATE.is_file():
        from mlflow import MlflowClient

        staging = _TEMPLATE.with_suffix(".staging.db")
        staging.unlink(missing_ok=True)
        MlflowClient(tracking_uri=f"sqlite:///{staging}").search_experiments()  # creates the tables
        staging.rename(_TEMPLATE)
    return _TEMPLATE


def empty_store(db: Path) -> str:
    """An empty MLflow SQLite database at ``db`` (a copy of the session's migrated one); its URI."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_db(), db)
    return f"sqlite:///{db}"


def fresh_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> config.Settings:
    """Settings whose home, lake and MLflow store live under tmp_path; the experiment exists."""
    import mlflow

    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.delenv("FLYWHEEL_LAKE", raising=False)
    # Unit tests of registry/scoring/drift logic: a copied SQLite store is the fast way to an empty
    # MLflow per test (the stack and the tests that run Airflow use PostgreSQL).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = config.load()
    (home / "mlflow").mkdir(parents=True)
    shutil.copyfile(_template_db(), home / "mlflow" / "mlflow.db")
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    settings.mlflow_artifact_root.mkdir(parents=True)
    mlflow.MlflowClient().create_experiment(
        settings.mlflow_experiment, artifact_location=settings.mlflow_artifact_root.as_uri()
    )
    return settings


def register(settings: config.Settings, model: Any, threshold: float | None = 0.5, **tags: str) -> int:
    """Log ``model`` in a run and register it as the next version of settings.model_name; returns the version."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=settings.model_name, pip_requirements=[]
        )
    version = int(info.registered_model_version)
    if threshold is not None:
        client.set_model_version_tag(settings.model_name, str(version), "decision_threshold", repr(threshold))
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, str(version), key, value)
    return version


CARRIERS = ("AA", "B6", "DL", "UA")
ORIGINS = ("EWR", "JFK", "LGA")


def features_frame(day: str, rows: int = 120, seed: int = 0) -> Any:
    """A synthetic features partition (every column of flywheel.features.COLUMNS); delays rise with dep_hour."""
    import numpy as np
    import pandas as pd

    from flywheel import features, schema

    rng = np.random.default_rng(seed)
    n = rows
    year, month, dom = (int(x) for x in day.split("-"))
    frame = pd.DataFrame(
        {
            "ds": [day] * n,
            "year": np.full(n, year, dtype="int32"),
            "month": np.full(n, month, dtype="int32"),
            "day": np.full(n, dom, dtype="int32"),
            "carrier": pd.array([CARRIERS[i % len(CARRIERS)] for i in range(n)], dtype="string"),
            "flight": np.arange(n, 0, -1, dtype="int32"),  # descending, so key order differs from row order
            "tailnum": pd.array([f"N{i:03d}" for i in range(n)], dtype="string"),
            "origin": pd.array([ORIGINS[i % len(ORIGINS)] for i in range(n)], dtype="string"),
            "dest": pd.array([("ATL", "ORD", "LAX", "BOS")[i % 4] for i in range(n)], dtype="string"),
        }
    )
    frame["route"] = frame["origin"] + "-" + frame["dest"]
    hour = rng.integers(5, 23, n)
    frame["dep_hour"] = hour.astype("int32")
    frame["sched_dep_minutes"] = (hour * 60 + rng.integers(0, 60, n)).astype("int32")
    for col in features.NUMERIC_FEATURES:
        if col not in frame.columns:
            frame[col] = rng.normal(size=n)
    risk = (hour - 14) / 3 + rng.normal(scale=1.0, size=n)
    frame["arr_delay"] = np.where(risk > 0.5, 30.0, -5.0)
    frame[schema.LABEL] = (frame["arr_delay"] >= 15).astype("int32")
    return frame.loc[:, list(features.COLUMNS)]


def tiny_pipeline(frame: Any, c: float = 1.0) -> Any:
    """A small sklearn pipeline fitted on a features frame through the training helper's model_input."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    from flywheel import features, schema
    from flywheel.training.data import model_input

    encode = ColumnTransformer(
        [
            (
                "cat",
                # dtype=float (a Python type): MLflow's default skops format refuses numpy.dtype objects.
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=float),
                list(features.CATEGORICAL_FEATURES),
            ),
            # No imputer: features_frame has no nulls, and SimpleImputer holds a numpy.dtype too.
            ("num", StandardScaler(), list(features.NUMERIC_FEATURES)),
        ]
    )
    pipe = Pipeline([("encode", encode), ("model", LogisticRegression(C=c, max_iter=500))])
    return pipe.fit(model_input(frame), frame[schema.LABEL].to_numpy())


def features_lake(root: Path, first: str, days: int, rows: int = 150) -> Path:
    """A lake with ``days`` synthetic features partitions from ``first`` on (cheap to train on)."""
    import datetime as dt

    from flywheel import catalog, features

    start = dt.date.fromisoformat(first)
    for n in range(days):
        day = (start + dt.timedelta(days=n)).isoformat()
        frame = features_frame(day, rows=rows, seed=n)
        catalog.FEATURES.write_frame(frame, day, root, {features.MANIFEST: {"rows": len(frame)}})
    return root


def cheap_importance(model: Any, frame: Any, seed: int, top: int = 20) -> tuple[Any, dict]:
    """A stand-in for flywheel.training.model.permutation_importance_figure (most of a small training's
    time: ~100 predictions of a calibrated booster) in tests about registration, not importance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, _ = plt.subplots(figsize=(1, 1))
    return figure, {}
