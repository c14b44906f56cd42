"""The training set: the features partitions of a window of days, checked and split by time.

``assemble(as_of, window_days)`` reads ``features/flights/ds=D/`` for every day of
``[as_of - window_days + 1, as_of]``. Days are never shuffled: the last ``holdout_days`` days
are the holdout (scored once, at the end), the days before are train, and the last days of
train are the validation fold used for tuning, calibration and the decision threshold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flywheel import catalog, config, features, lake, schema

if TYPE_CHECKING:
    import pandas as pd

# The share of train days (at least one day) kept back as the validation fold.
VALIDATION_FRACTION = 0.2
# Fewer labelled rows than this make every metric noise; a 2013 day has 600..1000 labelled flights.
MIN_TRAIN_ROWS = 2000
# Model inputs, in the order the model sees them.
MODEL_FEATURES: tuple[str, ...] = features.CATEGORICAL_FEATURES + features.NUMERIC_FEATURES


class TrainingDataError(ValueError):
    """The features of the training window are missing, malformed, or unfit to train on."""


@dataclass(frozen=True)
class Split:
    """Three time-ordered, disjoint slices of a training set."""

    train: pd.DataFrame  # what the model is fitted on (train days minus the validation fold)
    validation: pd.DataFrame  # tuning objective, calibration and decision threshold
    holdout: pd.DataFrame  # the last days; reported metrics and the promotion gate
    train_days: tuple[dt.date, ...]
    validation_days: tuple[dt.date, ...]
    holdout_days: tuple[dt.date, ...]

    @property
    def fit_days(self) -> tuple[dt.date, ...]:
        """Train plus validation days: everything before the holdout."""
        return self.train_days + self.validation_days


@dataclass(frozen=True)
class TrainingSet:
    """The rows of a window of features partitions and where they came from."""

    frame: pd.DataFrame
    as_of: dt.date
    window_days: int
    days: tuple[dt.date, ...]  # the partitions read, oldest first
    missing_days: tuple[dt.date, ...]  # days of the window without a partition (only with allow_missing)
    row_counts: dict[str, int]  # rows per partition, keyed by ISO date
    content_hash: str  # sha256 of the rows in key order; equal data gives an equal hash
    source: str  # the features dataset path
    paths: tuple[str, ...] = field(default=())

    @property
    def start(self) -> dt.date:
        return self.as_of - dt.timedelta(days=self.window_days - 1)

    def split(self, holdout_days: int, validation_fraction: float = VALIDATION_FRACTION) -> Split:
        """Holdout = the last ``holdout_days`` partitions; validation = the last share of the rest."""
        if holdout_days < 1:
            raise TrainingDataError(f"holdout_days={holdout_days}: need at least 1 holdout day")
        if len(self.days) < holdout_days + 2:
            raise TrainingDataError(
                f"training window {self.start}..{self.as_of} has {len(self.days)} partitions; "
                f"need at least holdout_days + 2 = {holdout_days + 2} (train, validation and holdout days). "
                "Widen the window (--window-days) or build more features partitions."
            )
        holdout = self.days[-holdout_days:]
        before = self.days[:-holdout_days]
        n_val = min(len(before) - 1, max(1, math.ceil(len(before) * validation_fraction)))
        train, validation = before[:-n_val], before[-n_val:]
        return Split(
            train=self._rows(train),
            validation=self._rows(validation),
            holdout=self._rows(holdout),
            train_days=tuple(train),
            validation_days=tuple(validation),
            holdout_days=tuple(holdout),
        )

    def _rows(self, days: tuple[dt.date, ...] | list[dt.date]) -> pd.DataFrame:
        wanted = {d.isoformat() for d in days}
        return self.frame.loc[self.frame["ds"].isin(wanted)].reset_index(drop=True)

    def label_rate(self) -> float:
        return float(self.frame[schema.LABEL].mean()) if len(self.frame) else float("nan")


def window(as_of: dt.date, window_days: int) -> list[dt.date]:
    """The days ``[as_of - window_days + 1, as_of]``, oldest first."""
    if window_days < 1:
        raise TrainingDataError(f"window_days={window_days}: need at least 1 day")
    return [as_of - dt.timedelta(days=n) for n in range(window_days - 1, -1, -1)]


def schema_problems(frame: pd.DataFrame) -> list[str]:
    """What breaks the features contract for training: missing columns, wrong kinds of values."""
    from pandas.api import types

    required = ("ds", *features.KEY_COLUMNS[1:], schema.LABEL, *MODEL_FEATURES)
    missing = [c for c in dict.fromkeys(required) if c not in frame.columns]
    problems = [f"missing columns {missing}"] if missing else []
    wrong: list[str] = []
    for col in features.CATEGORICAL_FEATURES:
        if col in frame.columns and not (types.is_string_dtype(frame[col]) or types.is_object_dtype(frame[col])):
            wrong.append(f"{col} is {frame[col].dtype}, expected strings")
    for col in features.NUMERIC_FEATURES:
        if col in frame.columns and (not types.is_numeric_dtype(frame[col]) or types.is_bool_dtype(frame[col])):
            wrong.append(f"{col} is {frame[col].dtype}, expected a number")
    if schema.LABEL in frame.columns:
        label = frame[schema.LABEL]
        if not types.is_integer_dtype(label) and not types.is_float_dtype(label):
            wrong.append(f"{schema.LABEL} is {label.dtype}, expected 0/1")
        elif label.isna().any() or not label.dropna().isin([0, 1]).all():
            wrong.append(f"{schema.LABEL} holds values other than 0/1")
    if wrong:
        problems.append("wrong types: " + "; ".join(wrong))
    return problems


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 over the column names, dtypes and rows in key order: the same data gives the same hash."""
    import pandas as pd

    keys = [c for c in features.KEY_COLUMNS if c in frame.columns]
    ordered = frame.sort_values(keys, kind="mergesort").reset_index(drop=True) if keys else frame
    digest = hashlib.sha256()
    digest.update(repr([(c, str(t)) for c, t in ordered.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def assemble(
    as_of: str | dt.date,
    window_days: int | None = None,
    settings: config.Settings | None = None,
    allow_missing: bool = False,
    dataset: catalog.Dataset = catalog.FEATURES,
) -> TrainingSet:
    """Read the features partitions of the window ending at ``as_of`` (inclusive) into a TrainingSet.

    Raises TrainingDataError when no partition of the window exists, when a day of the window
    lacks its partition (unless ``allow_missing``), or when a partition breaks the schema.
    """
    import pandas as pd

    settings = settings or config.load()
    end = lake.parse_ds(as_of)
    window_days = window_days or settings.train_window_days
    days = window(end, window_days)
    base = dataset.dir(settings.lake)
    present = [d for d in days if dataset.exists(d, settings.lake)]
    missing = [d for d in days if d not in set(present)]
    span = f"{days[0]}..{days[-1]} ({window_days} days)"
    if not present:
        raise TrainingDataError(
            f"training window {span}: no features partition under {base}. "
            "Build the features of these days first (the flights_features DAG, e.g. a backfill over the window)."
        )
    if missing and not allow_missing:
        raise TrainingDataError(
            f"training window {span}: {len(missing)} features partitions missing under {base}: "
            + ", ".join(d.isoformat() for d in missing)
            + ". Build (or backfill) those days with the flights_features DAG, or allow missing days."
        )

    frames: list[pd.DataFrame] = []
    row_counts: dict[str, int] = {}
    bad: list[str] = []
    for d in present:
        df = dataset.read_frame(d, settings.lake)
        problems = schema_problems(df)
        if problems:
            bad.append(f"{dataset.path(d, settings.lake)}: " + "; ".join(problems))
            continue
        if (df["ds"].astype(str) != d.isoformat()).any():
            bad.append(f"{dataset.path(d, settings.lake)}: column ds holds other dates")
            continue
        row_counts[d.isoformat()] = len(df)
        frames.append(df)
    if bad:
        raise TrainingDataError(
            f"training window {span}: {len(bad)} features partitions break the features contract "
            "(flywheel.features): " + " | ".join(bad) + ". Rebuild them with spark_jobs/build_features.py."
        )
    frame = _normalise(pd.concat(frames, ignore_index=True))
    return TrainingSet(
        frame=frame,
        as_of=end,
        window_days=window_days,
        days=tuple(present),
        missing_days=tuple(missing),
        row_counts=row_counts,
        content_hash=content_hash(frame),
        source=str(base),
        paths=tuple(str(dataset.path(d, settings.lake)) for d in present),
    )


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """One dtype per column whatever the partition's Parquet said (int32 vs float64 with nulls)."""
    import numpy as np

    out = frame.copy()
    out["ds"] = out["ds"].astype(str)
    for col in features.CATEGORICAL_FEATURES:
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    for col in features.NUMERIC_FEATURES:
        out[col] = out[col].astype("float64")
    out[schema.LABEL] = out[schema.LABEL].astype(np.int64)
    return out.sort_values(list(features.KEY_COLUMNS), kind="mergesort").reset_index(drop=True)


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns with the dtypes the model was trained on (strings and float64)."""
    missing = [c for c in MODEL_FEATURES if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"frame lacks model input columns {missing}")
    out = frame.loc[:, list(MODEL_FEATURES)].copy()
    for col in features.CATEGORICAL_FEATURES:
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    for col in features.NUMERIC_FEATURES:
        out[col] = out[col].astype("float64")
    return out


def gate_checks(ts: TrainingSet, settings: config.Settings | None = None, min_rows: int = MIN_TRAIN_ROWS) -> list[str]:
    """Problems that make the training set unfit (empty list = fit): size, label rate, missing days."""
    settings = settings or config.load()
    problems: list[str] = []
    span = f"{ts.start}..{ts.as_of}"
    if len(ts.frame) < min_rows:
        problems.append(f"training window {span} has {len(ts.frame)} rows, fewer than the minimum {min_rows}")
    rate = ts.label_rate()
    if not settings.min_label_rate <= rate <= settings.max_label_rate:
        problems.append(
            f"training window {span}: label rate {rate:.4f} is outside "
            f"[{settings.min_label_rate}, {settings.max_label_rate}]"
        )
    if ts.missing_days:
        problems.append(
            f"training window {span}: missing features partitions " + ", ".join(d.isoformat() for d in ts.missing_days)
        )
    for day in ts.days:
        part = ts.frame.loc[ts.frame["ds"] == day.isoformat(), schema.LABEL]
        if part.nunique() < 2:
            problems.append(f"features ds={day}: the label has a single value in {len(part)} rows")
    return problems


def describe(ts: TrainingSet) -> dict[str, object]:
    """A JSON-able summary (no rows) for logs and XCom."""
    return {
        "as_of": ts.as_of.isoformat(),
        "window": [ts.start.isoformat(), ts.as_of.isoformat()],
        "rows": len(ts.frame),
        "days": [d.isoformat() for d in ts.days],
        "missing_days": [d.isoformat() for d in ts.missing_days],
        "row_counts": dict(ts.row_counts),
        "label_rate": round(ts.label_rate(), 6),
        "content_hash": ts.content_hash,
        "source": ts.source,
    }
