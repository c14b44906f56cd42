"""One training run: assemble the window, tune, fit, calibrate, evaluate, log and register.

Everything goes to MLflow (``settings.mlflow_tracking_uri``; artifacts under
``settings.mlflow_artifact_root``, or served by the MLflow server on the cluster profile): a parent run ``train-<as_of>`` with one nested run per
Optuna trial, the datasets (train and holdout, with the partitions and content hash), params,
holdout metrics (overall and per carrier/origin), a permutation-importance plot, and the model,
registered as a new version of ``settings.model_name`` with the alias ``challenger``.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from flywheel import config, lake, schema
from flywheel.training import data, model

if TYPE_CHECKING:
    import pandas as pd

CHALLENGER = "challenger"
# Main metrics returned to the caller (all holdout metrics are logged to MLflow).
MAIN_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "base_rate")
IMPORTANCE_SAMPLE_ROWS = 1500
# One OpenMP thread for the booster: on a month of flights (~25k rows) thread start-up and
# barriers cost more than they save, and with Airflow tasks sharing the cores, spinning OpenMP
# threads slowed a fit from 0.5 s to 8+ s in measurements on a 2-core machine.
OPENMP_THREADS = 1


def configure_mlflow(settings: config.Settings) -> str:
    """Point MLflow at the settings' store and return the experiment id (artifacts under FLYWHEEL_HOME, or served by the MLflow server)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = settings.mlflow_tracking_uri
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:////abs/path.db -> /abs/path.db; the folder must exist before MLflow opens the file.
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(settings.mlflow_experiment, artifact_location=settings.experiment_artifact_location())


def _span(days: tuple[dt.date, ...]) -> str:
    return f"{days[0].isoformat()}..{days[-1].isoformat()}"


def log_dataset(frame: pd.DataFrame, name: str, source: str, days: tuple[dt.date, ...], context: str) -> None:
    """``mlflow.log_input`` of a split, tagged with its partitions, row count and content hash."""
    import mlflow
    import mlflow.data

    digest = data.content_hash(frame)
    tags = {
        "days": _span(days),
        "partitions": ",".join(d.isoformat() for d in days),
        "rows": str(len(frame)),
        "content_sha256": digest,
    }
    with warnings.catch_warnings():
        # A local path matches MLflow's source for both "" and "file" schemes (the same class): harmless.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        # The dataset's id columns (year, flight) are integers; its schema is informational, not enforced.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        # The digest column holds 36 characters; the full hash is in the tags.
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, targets=schema.LABEL, digest=digest[:32])
        mlflow.log_input(dataset, context=context, tags=tags)


def train(
    as_of: str | dt.date,
    settings: config.Settings | None = None,
    window_days: int | None = None,
    n_trials: int | None = None,
    tags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and register a challenger on the window ending at ``as_of``; returns a JSON-able summary.

    Raises TrainingDataError (before any MLflow run starts) when the window's features are
    missing, malformed or unfit (too few rows, label rate out of range).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        return _train(as_of, settings, window_days, n_trials, tags)


def _train(
    as_of: str | dt.date,
    settings: config.Settings | None,
    window_days: int | None,
    n_trials: int | None,
    tags: dict[str, Any] | None,
) -> dict[str, Any]:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    started = time.monotonic()
    settings = settings or config.load()
    day = lake.parse_ds(as_of)
    window_days = window_days or settings.train_window_days
    n_trials = n_trials or settings.tuning_trials
    seed = settings.seed

    ts = data.assemble(day, window_days, settings)
    problems = data.gate_checks(ts, settings)
    if problems:
        raise data.TrainingDataError(
            "cannot train: " + "; ".join(problems) + ". Fix the features of the window or move the window."
        )
    split = ts.split(settings.holdout_days)

    experiment_id = configure_mlflow(settings)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    run_tags = {"flywheel.as_of": day.isoformat(), "flywheel.kind": "training"}
    run_tags.update({str(k): str(v) for k, v in (tags or {}).items()})

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{day.isoformat()}", tags=run_tags) as run:
        for frame, name, days, context in (
            (split.train, "train", split.train_days, "training"),
            (split.validation, "validation", split.validation_days, "validation"),
            (split.holdout, "holdout", split.holdout_days, "holdout"),
        ):
            log_dataset(frame, f"flights_features_{name}", ts.source, days, context)
        mlflow.log_params(
            {
                "as_of": day.isoformat(),
                "window_days": window_days,
                "window": f"{ts.start.isoformat()}..{day.isoformat()}",
                "holdout_days": settings.holdout_days,
                "n_trials": n_trials,
                "seed": seed,
                "calibration": model.CALIBRATION,
                "train_days": _span(split.train_days),
                "validation_days": _span(split.validation_days),
                "holdout_days_range": _span(split.holdout_days),
                "train_rows": len(split.train),
                "validation_rows": len(split.validation),
                "holdout_rows": len(split.holdout),
                "training_set_sha256": ts.content_hash,
                "features_source": ts.source,
            }
        )

        def log_trial(number: int, params: dict[str, Any], value: float) -> None:
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"trial-{number:03d}",
                nested=True,
                tags={"flywheel.kind": "tuning_trial", "flywheel.as_of": day.isoformat()},
            ):
                mlflow.log_params({**params, "trial": number})
                mlflow.log_metric("val_roc_auc", value)

        best_params, best_value = model.tune(split.train, split.validation, n_trials, seed, on_trial=log_trial)
        fitted = model.fit(best_params, split.train, seed)
        calibrated = model.calibrate(fitted, split.validation)
        val_p = model.predict_proba(calibrated, split.validation)
        threshold = model.best_f1_threshold(split.validation[schema.LABEL].to_numpy(), val_p)
        mlflow.log_params({**best_params, "decision_threshold": threshold})

        metrics = model.evaluate(calibrated, split.holdout, threshold)
        val_metrics = model.scores(split.validation[schema.LABEL].to_numpy(), val_p, threshold)
        mlflow.log_metrics(metrics)
        mlflow.log_metrics({f"val_{k}": v for k, v in val_metrics.items()} | {"best_trial_val_roc_auc": best_value})

        sample = split.holdout.sample(n=min(IMPORTANCE_SAMPLE_ROWS, len(split.holdout)), random_state=seed).sort_index()
        figure, importances = model.permutation_importance_figure(calibrated, sample, seed)
        mlflow.log_figure(figure, "feature_importance.png")
        mlflow.log_dict(importances, "feature_importance.json")
        import matplotlib.pyplot as plt

        plt.close(figure)

        x_example = data.model_input(split.holdout.head(5))
        signature = infer_signature(
            data.model_input(split.holdout.head(200)),
            calibrated.predict_proba(data.model_input(split.holdout.head(200))),
        )
        info = mlflow.sklearn.log_model(
            calibrated,
            name="model",
            signature=signature,
            input_example=x_example,
            registered_model_name=settings.model_name,
            pyfunc_predict_fn="predict_proba",
            # Pinned explicitly: inferring requirements reloads the model in a subprocess (slow).
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
            skops_trusted_types=model.SKOPS_TRUSTED_TYPES,
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version)
        for key, value in {
            "as_of": day.isoformat(),
            "run_id": run.info.run_id,
            "decision_threshold": repr(threshold),
            "holdout_start": split.holdout_days[0].isoformat(),
            "holdout_end": split.holdout_days[-1].isoformat(),
            "window": f"{ts.start.isoformat()}..{day.isoformat()}",
            "training_set_sha256": ts.content_hash,
            **{f"metric.{k}": f"{metrics[k]:.6f}" for k in MAIN_METRICS},
        }.items():
            client.set_model_version_tag(settings.model_name, version, key, value)
        seconds = time.monotonic() - started
        mlflow.log_metric("training_seconds", seconds)

    return {
        "run_id": run.info.run_id,
        "experiment_id": experiment_id,
        "model_name": settings.model_name,
        "model_version": version,
        "model_uri": f"models:/{settings.model_name}/{version}",
        "as_of": day.isoformat(),
        "window": [ts.start.isoformat(), day.isoformat()],
        "holdout_days": [d.isoformat() for d in split.holdout_days],
        "decision_threshold": threshold,
        "best_params": best_params,
        "metrics": {k: round(metrics[k], 6) for k in MAIN_METRICS},
        "rows": {"train": len(split.train), "validation": len(split.validation), "holdout": len(split.holdout)},
        "training_set_sha256": ts.content_hash,
        "training_seconds": round(seconds, 2),
    }
