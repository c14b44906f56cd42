"""The committed GX context matches the code, and running it writes only under FLYWHEEL_HOME."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pandas as pd
import pytest

from flywheel import config, features, schema
from flywheel.validation import gates
from flywheel.validation import suites as gx_suites

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file and folder under root (folders map to b"")."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


def test_committed_context_matches_the_code() -> None:
    root = config.REPO_ROOT / "expectations"
    rendered = gx_suites.render_context()
    committed = {
        str(p.relative_to(root)): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "uncommitted"
    }
    stale = sorted(set(committed) ^ set(rendered)) + sorted(r for r in rendered if committed.get(r) != rendered[r])
    assert not stale, f"expectations/ is out of date ({stale}): run `python -m flywheel.validation.suites --write`"


def test_write_context_is_stable(tmp_path: Path) -> None:
    gx_suites.write_context(tmp_path)
    first = _snapshot(tmp_path)
    (tmp_path / "expectations" / "old_suite.json").write_text("{}")
    gx_suites.write_context(tmp_path)
    assert _snapshot(tmp_path) == first


def test_suites_cover_the_contracts() -> None:
    built = gx_suites.build_suites()
    landing_cols = {e["kwargs"]["column"] for e in built["flights_landing"] if e["type"] == "expect_column_to_exist"}
    assert landing_cols == set(schema.FLIGHTS)
    feature_cols = [e["kwargs"]["column"] for e in built["flights_features"] if e["type"] == "expect_column_to_exist"]
    assert feature_cols == list(features.COLUMNS)
    dest = next(
        e
        for e in built["flights_landing"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "dest"
    )
    assert {"JFK", "SJU", "BQN"} <= set(dest["kwargs"]["value_set"]) and "XXX" not in dest["kwargs"]["value_set"]
    params = {
        v["$PARAMETER"]
        for suite in built.values()
        for e in suite
        for v in e["kwargs"].values()
        if isinstance(v, dict) and "$PARAMETER" in v
    }
    assert params == set(gx_suites.PARAMETERS)


def _weather(day: int) -> pd.DataFrame:
    return pd.DataFrame(
        {col: [1.0] * 24 for col in schema.WEATHER}
        | {"origin": ["JFK"] * 24, "year": [2013] * 24, "month": [1] * 24, "day": [day] * 24, "hour": list(range(24))}
        | {"time_hour": ["2013-01-01T00:00:00Z"] * 24}
    )


def _run_weather(day: int) -> bool:
    settings = config.load()
    run = gates.run_checkpoint(
        "weather_landing",
        _weather(day),
        {"ds_year": 2013, "ds_month": 1, "ds_day": day},
        pd.Timestamp(2013, 1, day).date(),
        settings,
    )
    return run["success"]


def test_runs_write_only_under_flywheel_home_and_in_parallel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLYWHEEL_GX_DIR", raising=False)
    settings = config.load()
    before = _snapshot(settings.gx_dir)
    # Separate processes, as Airflow runs parallel days: results must not collide, docs must not crash.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(_run_weather, [1, 2, 3]) == [True] * 3
    assert _snapshot(settings.gx_dir) == before
    results = list((tmp_path / "home" / "gx" / "validations" / "weather_landing").rglob("*.json"))
    assert len(results) == 3
    index = (settings.data_docs_dir / "index.html").read_text()
    assert index.count("weather_landing") >= 3
