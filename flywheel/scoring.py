"""Batch scoring: the champion's P(delayed) for every flight of one features partition.

``score_partition(ds)`` reads ``features/flights/ds=D/``, resolves the ``champion`` alias to a
version when called (so a promotion or rollback takes effect on the next run), scores every
flight with that version and writes ``predictions/flights/ds=D/`` atomically (a rerun replaces
it): one row per flight, in key order, with

    ds, carrier, flight, origin, dest, sched_dep_minutes   the flight
    probability                                           P(arr_delay >= 15)
    decision                                              1 if probability >= the version's decision_threshold tag
    model_name, model_version, model_run_id               which model said so
    is_delayed                                            the label when the partition has it (null otherwise)

plus ``_manifest.json`` (model, threshold, row and positive counts). Nothing depends on the wall
clock: scoring the same partition with the same champion gives the same rows and manifest.

    python -m flywheel.scoring --ds 2013-01-05
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Any

from flywheel import catalog, config, features, lake, schema

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "_manifest.json"
FLIGHT_COLUMNS = (*features.KEY_COLUMNS, "dest", "sched_dep_minutes")
MODEL_COLUMNS = ("model_name", "model_version", "model_run_id")
COLUMNS = (*FLIGHT_COLUMNS, "probability", "decision", *MODEL_COLUMNS, schema.LABEL)


class ScoringError(RuntimeError):
    """A partition cannot be scored: no champion, no features, or a model version without its threshold."""


class NoChampion(ScoringError):
    """No model has the champion alias yet: there is nothing to score with."""


def predictions_frame(
    frame: pd.DataFrame,
    probability: Any,
    threshold: float,
    model_name: str,
    model_version: int,
    model_run_id: str,
) -> pd.DataFrame:
    """The predictions rows of a scored features frame, in key order (pure; no I/O)."""
    import numpy as np
    import pandas as pd

    out = pd.DataFrame({c: frame[c].to_numpy() for c in FLIGHT_COLUMNS if c in frame.columns})
    missing = [c for c in FLIGHT_COLUMNS if c not in frame.columns]
    if missing:
        raise ScoringError(f"features frame lacks the flight columns {missing}")
    out["ds"] = out["ds"].astype(str)
    for col in ("carrier", "origin", "dest"):
        out[col] = out[col].astype("string")
    out["flight"] = out["flight"].astype("int64")
    out["sched_dep_minutes"] = out["sched_dep_minutes"].astype("int64")
    proba = np.asarray(probability, dtype="float64")
    if proba.shape != (len(frame),):
        raise ScoringError(f"the model returned {proba.shape} probabilities for {len(frame)} rows")
    out["probability"] = proba
    out["decision"] = (proba >= threshold).astype("int64")
    out["model_name"] = pd.Series([model_name] * len(out), dtype="string")
    out["model_version"] = np.full(len(out), int(model_version), dtype="int64")
    out["model_run_id"] = pd.Series([model_run_id] * len(out), dtype="string")
    if schema.LABEL in frame.columns:
        out[schema.LABEL] = pd.array(frame[schema.LABEL].to_numpy(), dtype="Int64")
    else:
        out[schema.LABEL] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out.sort_values([*FLIGHT_COLUMNS], kind="mergesort").reset_index(drop=True)[list(COLUMNS)]


def score_partition(ds: str | dt.date, settings: config.Settings | None = None) -> dict[str, Any]:
    """Score ``features/flights/ds=D`` with the current champion; returns the manifest plus the path."""
    return score_days([ds], settings)[0]


def score_days(days: list[str | dt.date], settings: config.Settings | None = None) -> list[dict[str, Any]]:
    """Score each day's features partition with the champion, resolved (and loaded) once for all of
    them; returns the manifests plus paths in date order. Every day is checked before any is written."""
    from flywheel.registry.client import (
        CHAMPION,
        RegistryError,
        alias_version,
        connect,
        decision_threshold,
        get_version,
        load_model,
    )
    from flywheel.training.model import predict_proba

    settings = settings or config.load()
    dates = sorted({lake.parse_ds(d) for d in days})
    what = f"ds={dates[0]}" if len(dates) == 1 else f"ds={dates[0]}..{dates[-1]}"
    frames = {}
    for day in dates:
        source = catalog.FEATURES.path(day, settings.lake)
        if not source.is_dir():
            raise ScoringError(
                f"cannot score ds={day}: features partition {source} does not exist. "
                "Run the flights_features DAG for that day first."
            )
        frames[day] = catalog.FEATURES.read_frame(day, settings.lake)
        if frames[day].empty:
            raise ScoringError(f"cannot score ds={day}: features partition {source} has no rows; rebuild it")

    client = connect(settings)
    name = settings.model_name
    version = alias_version(client, name, CHAMPION)
    if version is None:
        raise NoChampion(
            f"cannot score {what}: no champion yet: registered model {name!r} has no {CHAMPION!r} alias. "
            "Run flights_training first."
        )
    mv = get_version(client, name, version)
    try:
        threshold = decision_threshold(mv)
    except RegistryError as exc:
        raise ScoringError(f"cannot score {what} with {name} v{version}: {exc}") from exc
    model = load_model(name, version)

    out = []
    for day, frame in frames.items():
        probability = predict_proba(model, frame)
        rows = predictions_frame(frame, probability, threshold, name, version, mv.run_id or "")
        manifest = {
            "ds": day.isoformat(),
            "model_name": name,
            "model_version": int(version),
            "model_run_id": mv.run_id or "",
            "decision_threshold": threshold,
            "features_partition": catalog.FEATURES.partition(day),
            "rows": len(rows),
            "positives": int(rows["decision"].sum()),
            "mean_probability": round(float(rows["probability"].mean()), 6) if len(rows) else None,
            "labelled_rows": int(rows[schema.LABEL].notna().sum()),
        }
        path = catalog.PREDICTIONS.write_frame(rows, day, settings.lake, extra_files={MANIFEST: manifest})
        out.append({**manifest, "path": str(path)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.scoring", description=__doc__.split("\n")[0])
    parser.add_argument("--ds", required=True, type=lake.parse_ds, help="the features partition to score, YYYY-MM-DD")
    parser.add_argument("--through", type=lake.parse_ds, help="score every day of --ds..--through (default: --ds)")
    args = parser.parse_args(argv)
    try:
        manifests = score_days(lake.days_between(args.ds, args.through or args.ds))
    except (ScoringError, lake.LakeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(manifests[0] if len(manifests) == 1 else manifests, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
