"""flywheel.scoring: predictions rows (pure), scoring a partition with the champion, reruns, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow_store import features_frame, fresh_store, register, tiny_pipeline

from flywheel import config, lake, schema
from flywheel.registry.client import CHAMPION, connect
from flywheel.scoring import COLUMNS, ScoringError, main, predictions_frame, score_partition
from flywheel.training.data import model_input

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration

DAY = "2013-01-05"


# --- the rows (pure) -------------------------------------------------------------------------------


def test_predictions_frame_exact_rows() -> None:
    frame = pd.DataFrame(
        {
            "ds": ["2013-01-05"] * 3,
            "carrier": pd.array(["UA", "AA", "UA"], dtype="string"),
            "flight": [20, 11, 10],
            "origin": ["JFK", "LGA", "JFK"],
            "dest": ["ORD", "MIA", "LAX"],
            "sched_dep_minutes": [600, 420, 900],
            schema.LABEL: [1, 0, 0],
            "temp": [1.0, 2.0, 3.0],
        }
    )
    out = predictions_frame(frame, [0.5, 0.2, 0.7], 0.5, "flights_delay", 3, "abc")
    assert list(out.columns) == list(COLUMNS)
    assert out.drop(columns=["ds", "model_name", "model_run_id"]).values.tolist() == [
        # key order (carrier, flight, origin); probability == threshold counts as a delay call
        ["AA", 11, "LGA", "MIA", 420, 0.2, 0, 3, 0],
        ["UA", 10, "JFK", "LAX", 900, 0.7, 1, 3, 0],
        ["UA", 20, "JFK", "ORD", 600, 0.5, 1, 3, 1],
    ]
    assert set(out["ds"]) == {"2013-01-05"}
    assert set(zip(out["model_name"], out["model_run_id"], strict=True)) == {("flights_delay", "abc")}
    assert str(out["decision"].dtype) == "int64" and str(out[schema.LABEL].dtype) == "Int64"


def test_predictions_frame_without_label_has_null_label() -> None:
    frame = pd.DataFrame(
        {"ds": [DAY], "carrier": ["UA"], "flight": [1], "origin": ["JFK"], "dest": ["ORD"], "sched_dep_minutes": [60]}
    )
    out = predictions_frame(frame, [0.1], 0.5, "m", 1, "r")
    assert out[schema.LABEL].isna().all()


def test_predictions_frame_refuses_a_wrong_number_of_probabilities() -> None:
    frame = features_frame(DAY, rows=4)
    with pytest.raises(ScoringError, match=r"the model returned \(3,\) probabilities for 4 rows"):
        predictions_frame(frame, [0.1, 0.2, 0.3], 0.5, "m", 1, "r")


# --- scoring a partition ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    return fresh_store(tmp_path, monkeypatch)


@pytest.fixture
def features(store: config.Settings) -> pd.DataFrame:
    frame = features_frame(DAY, rows=150, seed=3)
    lake.write_frame(frame, "features", "flights", DAY, store.lake, extra_files={"_manifest.json": {"rows": 150}})
    return frame


def _champion(settings: config.Settings, model: Any, threshold: float | None) -> int:
    version = register(settings, model, threshold=threshold)
    connect(settings).set_registered_model_alias(settings.model_name, CHAMPION, str(version))
    return version


def _partition(settings: config.Settings) -> Path:
    return lake.partition_path("predictions", "flights", DAY, settings.lake)


def test_score_partition_with_the_champion(store: config.Settings, features: pd.DataFrame) -> None:
    model = tiny_pipeline(features_frame("2013-01-04", rows=200, seed=1))
    version = _champion(store, model, threshold=0.4)
    run_id = connect(store).get_model_version(store.model_name, str(version)).run_id

    result = score_partition(DAY, store)

    out = lake.read_frame("predictions", "flights", DAY, store.lake)
    assert list(out.columns) == list(COLUMNS)
    assert len(out) == len(features) == result["rows"]
    assert out["ds"].eq(DAY).all()
    assert out[["model_name", "model_version", "model_run_id"]].drop_duplicates().to_dict("records") == [
        {"model_name": "flights_delay", "model_version": version, "model_run_id": run_id}
    ]
    expected = features.assign(p=model.predict_proba(model_input(features))[:, 1]).sort_values(
        ["carrier", "flight", "origin"]
    )
    np.testing.assert_allclose(out["probability"].to_numpy(), expected["p"].to_numpy())
    assert out["decision"].tolist() == (expected["p"] >= 0.4).astype(int).tolist()
    assert out[schema.LABEL].tolist() == expected[schema.LABEL].tolist()
    manifest = json.loads((_partition(store) / "_manifest.json").read_text())
    assert manifest == {
        "ds": DAY,
        "model_name": "flights_delay",
        "model_version": version,
        "model_run_id": run_id,
        "decision_threshold": 0.4,
        "features_partition": f"features/flights/ds={DAY}",
        "rows": 150,
        "positives": int(out["decision"].sum()),
        "mean_probability": round(float(out["probability"].mean()), 6),
        "labelled_rows": 150,
    }
    assert result == {**manifest, "path": str(_partition(store))}


def test_rerun_gives_the_same_rows_and_the_champion_is_resolved_when_called(
    store: config.Settings, features: pd.DataFrame
) -> None:
    train = features_frame("2013-01-04", rows=200, seed=1)
    v1 = _champion(store, tiny_pipeline(train), threshold=0.5)
    score_partition(DAY, store)
    first = {p.name: p.read_bytes() for p in _partition(store).iterdir()}
    score_partition(DAY, store)
    assert {p.name: p.read_bytes() for p in _partition(store).iterdir()} == first  # byte-identical

    v2 = _champion(store, tiny_pipeline(train, c=0.01), threshold=0.9)
    result = score_partition(DAY, store)
    out = lake.read_frame("predictions", "flights", DAY, store.lake)
    assert (result["model_version"], set(out["model_version"])) == (v2, {v2})
    assert v2 != v1
    assert out["decision"].tolist() == (out["probability"] >= 0.9).astype(int).tolist()


def test_no_champion_is_a_clear_error(store: config.Settings, features: pd.DataFrame) -> None:
    with pytest.raises(ScoringError) as info:
        score_partition(DAY, store)
    assert str(info.value) == (
        f"cannot score ds={DAY}: no champion yet: registered model 'flights_delay' has no 'champion' alias. "
        "Run flights_training first."
    )
    assert not _partition(store).exists()


def test_missing_features_partition_is_named(store: config.Settings) -> None:
    with pytest.raises(ScoringError) as info:
        score_partition("2013-01-06", store)
    path = lake.partition_path("features", "flights", "2013-01-06", store.lake)
    assert str(info.value) == (
        f"cannot score ds=2013-01-06: features partition {path} does not exist. "
        "Run the flights_features DAG for that day first."
    )


def test_missing_threshold_tag_names_the_version(store: config.Settings, features: pd.DataFrame) -> None:
    version = _champion(store, tiny_pipeline(features), threshold=None)
    with pytest.raises(ScoringError, match=f"model flights_delay v{version} has no 'decision_threshold' tag"):
        score_partition(DAY, store)
    assert not _partition(store).exists()


def test_cli(store: config.Settings, features: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    version = _champion(store, tiny_pipeline(features), threshold=0.5)
    assert main(["--ds", DAY]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["model_version"], printed["rows"]) == (version, 150)
    assert lake.exists("predictions", "flights", DAY, store.lake)
