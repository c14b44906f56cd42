"""The delay model: ordinal-encoded categoricals into a histogram gradient-boosted classifier,
sigmoid-calibrated on the validation fold; Optuna tuning; holdout metrics and slices.

Why this shape: ``OrdinalEncoder(unknown_value=-1)`` maps a carrier or airport never seen in
training to -1, which HistGradientBoosting treats as missing, so scoring a new category never
fails. The booster is fitted on the train days only; calibration and the decision threshold use
the validation days through a ``FrozenEstimator``, and the holdout is touched only by
:func:`evaluate`. Everything is seeded, early stopping is off, so equal data gives equal models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flywheel import features, schema
from flywheel.training.data import MODEL_FEATURES, model_input

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.base import BaseEstimator

SLICE_COLUMNS = ("carrier", "origin")
CALIBRATION = "sigmoid"  # 2 parameters: stable on a few thousand validation rows, unlike isotonic
# Types the skops-serialised model holds beyond skops' defaults. MLflow stores the list in the
# model's flavor config, so mlflow.sklearn.load_model trusts exactly these and nothing else.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "max_depth": 6,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    "max_iter": 150,
}


def build_pipeline(params: Mapping[str, Any], seed: int) -> BaseEstimator:
    """Unfitted pipeline: categoricals ordinal-encoded (unknown/missing -> treated as missing), numerics as is."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    n_cat = len(features.CATEGORICAL_FEATURES)
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                    encoded_missing_value=-1,
                    dtype=float,
                ),
                list(features.CATEGORICAL_FEATURES),
            ),
            ("numeric", "passthrough", list(features.NUMERIC_FEATURES)),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    booster = HistGradientBoostingClassifier(
        **{**DEFAULT_PARAMS, **params},
        # The encoder puts the categoricals first; HGB treats their negative codes as missing.
        categorical_features=list(range(n_cat)),
        early_stopping=False,
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("model", booster)])


def fit(params: Mapping[str, Any], train: pd.DataFrame, seed: int) -> BaseEstimator:
    """Fit the uncalibrated pipeline on ``train`` (a features frame)."""
    pipe = build_pipeline(params, seed)
    pipe.fit(model_input(train), train[schema.LABEL].to_numpy())
    return pipe


def calibrate(fitted: BaseEstimator, validation: pd.DataFrame, method: str = CALIBRATION) -> BaseEstimator:
    """Calibrate a fitted pipeline on the validation fold without refitting it."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    model = CalibratedClassifierCV(FrozenEstimator(fitted), method=method)
    model.fit(model_input(validation), validation[schema.LABEL].to_numpy())
    return model


def predict_proba(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """P(delayed) for every row of a features frame (works for a fitted or an MLflow-loaded sklearn model)."""
    import numpy as np

    proba = model.predict_proba(model_input(frame))
    return np.asarray(proba)[:, 1]


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut-off that maximises F1 on (y, p); ties go to the highest threshold."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(thresholds[best])


def slice_metrics(y: np.ndarray, p: np.ndarray, frame: pd.DataFrame) -> dict[str, float]:
    """ROC AUC and row count per carrier and per origin (AUC only where a slice has both classes).

    Keys: ``roc_auc__carrier__UA``, ``rows__carrier__UA``, ``roc_auc__origin__JFK``, ...
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(y), np.asarray(p)
    out: dict[str, float] = {}
    for col in SLICE_COLUMNS:
        values = frame[col].astype(object).where(frame[col].notna(), "missing").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            out[f"rows__{col}__{value}"] = float(mask.sum())
            if len(np.unique(y[mask])) == 2:
                out[f"roc_auc__{col}__{value}"] = float(roc_auc_score(y[mask], p[mask]))
    return out


def scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Overall metrics of probabilities ``p`` against labels ``y`` at a decision threshold."""
    import numpy as np
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y, p = np.asarray(y), np.asarray(p)
    pred = (p >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "base_rate": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "rows": float(len(y)),
    }


def evaluate(model: Any, frame: pd.DataFrame, threshold: float) -> dict[str, float]:
    """All metrics of ``model`` on a features frame: overall (:func:`scores`) plus :func:`slice_metrics`.

    The promotion gate calls this for the champion on the challenger's holdout.
    """
    y = frame[schema.LABEL].to_numpy()
    p = predict_proba(model, frame)
    return {**scores(y, p, threshold), **slice_metrics(y, p, frame)}


def suggest(trial: Any) -> dict[str, Any]:
    """The search space: small and fast (a trial fits in seconds on a month of flights)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 15, 63),
        "max_depth": trial.suggest_int("max_depth", 3, 8),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 20, 200, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
        "max_iter": trial.suggest_int("max_iter", 50, 300, step=50),
    }


def tune(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    n_trials: int,
    seed: int,
    on_trial: Callable[[int, dict[str, Any], float], None] | None = None,
) -> tuple[dict[str, Any], float]:
    """Optuna TPE search maximising validation ROC AUC; returns (best params, best value).

    ``on_trial(number, params, val_roc_auc)`` runs after each trial (training logs a nested MLflow run).
    """
    import optuna
    from sklearn.metrics import roc_auc_score

    if n_trials < 1:
        raise ValueError(f"n_trials={n_trials}: need at least one trial")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x_val, y_val = model_input(validation), validation[schema.LABEL].to_numpy()

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial)
        pipe = fit(params, train, seed)
        value = float(roc_auc_score(y_val, pipe.predict_proba(x_val)[:, 1]))
        if on_trial is not None:
            on_trial(trial.number, params, value)
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    # Trials run one at a time: parallel trials would make TPE's suggestions depend on timing.
    study.optimize(objective, n_trials=n_trials, n_jobs=1)
    return dict(study.best_params), float(study.best_value)


def permutation_importance_figure(model: Any, frame: pd.DataFrame, seed: int, top: int = 20) -> tuple[Any, dict]:
    """Permutation importance (ROC AUC drop) on ``frame``; returns a matplotlib figure and the means."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model,
        model_input(frame),
        frame[schema.LABEL].to_numpy(),
        scoring="roc_auc",
        n_repeats=2,
        random_state=seed,
    )
    means = dict(zip(MODEL_FEATURES, (float(v) for v in result.importances_mean), strict=True))
    ranked = sorted(means.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(ranked) + 1.2))
    names = [k for k, _ in ranked][::-1]
    ax.barh(names, [v for _, v in ranked][::-1])
    ax.set_xlabel("ROC AUC drop when the feature is permuted (holdout sample)")
    ax.set_title(f"Permutation importance, top {len(ranked)}")
    fig.tight_layout()
    return fig, means
