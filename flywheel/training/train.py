"""One training run: assemble the window, tune, fit, calibrate, evaluate, log and register.

Everything goes to MLflow (``settings.mlflow_tracking_uri``; artifacts under
``settings.mlflow_artifact_root``, or served by the MLflow server on the cluster profile): a parent run ``train-<as_of>`` with one nested run per
Optuna trial, the datasets (train and holdout, with the partitions and content hash), params,
holdout metrics (overall and per carrier/origin), a permutation-importance plot, and the model,
registered as a new version of ``settings.model_name`` with the alias ``challenger``.

Called from an Airflow task with its :class:`~flywheel.training.registration.Attempt`, a retry
reuses the version an earlier try registered and marks the runs earlier tries left unfinished
(:mod:`flywheel.training.registration`). The version is registered last, after every artifact;
an MLflow that cannot be reached fails the training with
:class:`~flywheel.training.registration.MlflowUnreachable`, naming its URL.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from flywheel import config, faults, lake, schema
from flywheel.training import data, model, registration
from flywheel.training.registration import Attempt, MlflowUnreachable

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

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
    attempt: Attempt | None = None,
) -> dict[str, Any]:
    """Train, evaluate and register a challenger on the window ending at ``as_of``; returns a JSON-able summary.

    Raises TrainingDataError (before any MLflow run starts) when the window's features are
    missing, malformed or unfit (too few rows, label rate out of range), and MlflowUnreachable
    when MLflow does not answer. With ``attempt`` (an Airflow task's try), a version that an
    earlier try of the same task registered is reused (its summary has ``reused: True``).
    """
    from mlflow.exceptions import MlflowException
    from threadpoolctl import threadpool_limits

    settings = settings or config.load()
    step = ["connecting to MLflow"]  # what was being done, for the error
    try:
        with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
            return _train(as_of, settings, window_days, n_trials, tags, attempt, step)
    except (MlflowException, OSError) as exc:
        if not registration.unreachable(exc):
            raise
        uri = settings.mlflow_tracking_uri
        raise MlflowUnreachable(
            f"MLflow at {registration.safe_uri(uri)} could not be reached while {step[0]} (training as of "
            f"{as_of}), after MLflow's own retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES): {registration.redact(str(exc), uri)}. "
            "Nothing is half-registered (a version is registered only after its run's artifacts, with all its "
            "tags); rerun the task once MLflow answers again: the rerun reuses a version this try registered, "
            "or marks this try's unfinished run abandoned and trains again"
        ) from exc


def _train(
    as_of: str | dt.date,
    settings: config.Settings,
    window_days: int | None,
    n_trials: int | None,
    tags: dict[str, Any] | None,
    attempt: Attempt | None,
    step: list[str],
) -> dict[str, Any]:
    import mlflow
    from mlflow.tracking import MlflowClient

    started = time.monotonic()
    day = lake.parse_ds(as_of)
    window_days = window_days or settings.train_window_days
    n_trials = n_trials or settings.tuning_trials

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
    if attempt is not None:
        step[0] = "looking for a version an earlier try registered"
        earlier = registration.find(client, settings.model_name, attempt)
        if earlier is not None:
            return registration.reuse(client, settings.model_name, earlier, CHALLENGER, attempt)
        registration.abandon_runs(client, experiment_id, attempt)
        run_tags.update(attempt.tags())

    step[0] = "logging the training run"
    run = mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{day.isoformat()}", tags=run_tags)
    try:
        summary, model_uri, version_tags = _fit_and_log(
            ts, split, settings, day, window_days, n_trials, experiment_id, run.info.run_id, step
        )
        summary["training_seconds"] = round(time.monotonic() - started, 2)
        mlflow.log_metric("training_seconds", summary["training_seconds"])
        mlflow.log_dict(summary, registration.SUMMARY_FILE)  # what a retry of the task returns
        # Everything the version needs is logged: a process stopped here leaves an unfinished run, no version.
        faults.failpoint("training.register")
        step[0] = "registering the challenger"
        tags = {**version_tags, **(attempt.tags() if attempt else {})}
        version = registration.register(settings.model_name, model_uri, tags)
        step[0] = "moving the challenger alias"
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version)
        step[0] = "finishing the training run"
        mlflow.end_run()
    except BaseException:
        _end_failed(run.info.run_id)
        raise
    return {**summary, "model_version": version, "model_uri": f"models:/{settings.model_name}/{version}"}


def _end_failed(run_id: str) -> None:
    """End the active run as FAILED, if MLflow answers (else a rerun marks it abandoned)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.end_run(status="FAILED")
    except (MlflowException, OSError) as exc:  # the original error is what the caller raises
        log.warning("could not mark the training run %s FAILED (%s); a rerun marks it abandoned", run_id, exc)


def _fit_and_log(
    ts: data.TrainingSet,
    split: data.Split,
    settings: config.Settings,
    day: dt.date,
    window_days: int,
    n_trials: int,
    experiment_id: str,
    run_id: str,
    step: list[str],
) -> tuple[dict[str, Any], str, dict[str, str]]:
    """Tune, fit, calibrate, evaluate; log all of it and the model to the active run (not registered yet).

    Returns the summary, the logged model's URI and the tags its version gets."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    seed = settings.seed
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

    step[0] = "logging the model"
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
        pyfunc_predict_fn="predict_proba",
        # Pinned explicitly: inferring requirements reloads the model in a subprocess (slow).
        pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
        skops_trusted_types=model.SKOPS_TRUSTED_TYPES,
    )
    version_tags = {
        "as_of": day.isoformat(),
        "run_id": run_id,
        "decision_threshold": repr(threshold),
        "holdout_start": split.holdout_days[0].isoformat(),
        "holdout_end": split.holdout_days[-1].isoformat(),
        "window": f"{ts.start.isoformat()}..{day.isoformat()}",
        "training_set_sha256": ts.content_hash,
        **{f"metric.{k}": f"{metrics[k]:.6f}" for k in MAIN_METRICS},
    }
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "model_name": settings.model_name,
        "as_of": day.isoformat(),
        "window": [ts.start.isoformat(), day.isoformat()],
        "holdout_days": [d.isoformat() for d in split.holdout_days],
        "decision_threshold": threshold,
        "best_params": best_params,
        "metrics": {k: round(metrics[k], 6) for k in MAIN_METRICS},
        "rows": {"train": len(split.train), "validation": len(split.validation), "holdout": len(split.holdout)},
        "training_set_sha256": ts.content_hash,
    }, info.model_uri, version_tags
