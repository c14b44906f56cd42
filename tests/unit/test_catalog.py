"""flywheel.catalog: one entry per dataset of the lake, and nothing else spells a zone or a dataset."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from flywheel import catalog, config, lake

REPO = Path(__file__).resolve().parents[2]
# The source tree the rule covers (tests may spell paths: they pin them).
SOURCES = ("flywheel", "spark_jobs", "dags", "plugins", "bench")
CATALOG = REPO / "flywheel" / "catalog.py"
# A quoted zone name, alone or opening a path: "features", 'reports', f"landing/{...}".
ZONE_LITERAL = re.compile(r"""(["'])(""" + "|".join(catalog.ZONES) + r""")(\1|/)""")
# A line that spells a zone's name for something else (a DAG tag, an evidence kind) says so.
NOT_A_ZONE = "# not a lake zone"
# flywheel.lake's functions addressed by (zone, dataset): only the catalog calls them.
ZONE_FUNCTIONS = {
    "dataset_path", "partition_path", "exists", "version", "list_partitions", "staged_partition", "write_frame",
    "read_frame", "move_partition", "delete_partition", "scratch", "sweep_dataset",
}  # fmt: skip
DAY = dt.date(2013, 1, 5)


def _sources() -> list[Path]:
    return sorted(p for top in SOURCES for p in (REPO / top).rglob("*.py") if p != CATALOG)


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_no_zone_name_is_spelled_outside_the_catalog() -> None:
    """The done-when check of "one catalog": no quoted zone name in the source tree but catalog.py's
    (a line naming something else that shares a zone's name carries ``# not a lake zone``)."""
    found, stale = [], []
    for path in _sources():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            hit = ZONE_LITERAL.search(line)
            if hit and NOT_A_ZONE not in line:
                found.append(f"{_where(path, n)}: {line.strip()}")
            elif NOT_A_ZONE in line and not hit:
                stale.append(_where(path, n))
    assert not found, "zone names spelled outside flywheel/catalog.py (use its entries):\n" + "\n".join(found)
    assert not stale, f"'{NOT_A_ZONE}' on lines that spell no zone: {stale}"


def test_only_the_catalog_addresses_the_lake_by_zone_and_dataset() -> None:
    """Every read and write of a dataset goes through a catalog entry: no other module calls the lake's
    (zone, dataset) functions, so no other module can name a dataset the catalog does not have."""
    found = []
    for path in [*_sources(), CATALOG]:
        if path in (CATALOG, REPO / "flywheel" / "lake.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ZONE_FUNCTIONS:
                if isinstance(node.value, ast.Name) and node.value.id == "lake":
                    found.append(f"{_where(path, node.lineno)}: lake.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "flywheel.lake":
                found += [f"{_where(path, node.lineno)}: {a.name}" for a in node.names if a.name in ZONE_FUNCTIONS]
    assert not found, "lake addressed by zone and dataset outside the catalog:\n" + "\n".join(found)


def test_every_catalog_name_the_code_uses_exists() -> None:
    known = {*catalog.entries(), *dir(catalog)}
    used = set()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "catalog":
                used.add((node.attr, _where(path, node.lineno)))
    assert {name for name, _ in used} - known == set(), sorted(w for n, w in used if n not in known)


def test_entries_are_one_per_folder_and_cover_every_zone() -> None:
    entries = list(catalog.entries().values())
    folders = [(e.zone, e.dataset) for e in entries]
    assert len(folders) == len(set(folders)), folders
    assert {e.zone for e in entries} == set(catalog.ZONES)
    assert [str(z) for z in catalog.ZONES] == ["landing", "quarantine", "features", "predictions", "reports", "monitoring"]
    assets = [e.asset for e in entries if e.asset] + [catalog.DRIFT_ASSET]
    assert len(assets) == len(set(assets))
    assert set(catalog.QUARANTINES) == {e for e in entries if e.zone == catalog.Zone.QUARANTINE}
    assert all(e.written_by for e in entries)


def test_the_lake_validates_zones_against_the_catalog(tmp_path: Path) -> None:
    assert lake.dataset_path("features", "flights", tmp_path) == catalog.FEATURES.dir(tmp_path)
    with pytest.raises(lake.LakeError, match="zones are landing, quarantine, features, predictions, reports, monitoring"):
        lake.dataset_path("feature", "flights", tmp_path)


def test_names_paths_and_assets_are_the_lake_layout(tmp_path: Path) -> None:
    expected = {
        "LANDING_FLIGHTS": "landing/flights",
        "QUARANTINE_LANDING": "quarantine/flights",
        "FEATURES_CANDIDATE": "features/flights_candidate",
        "FEATURES": "features/flights",
        "QUARANTINE_FEATURES": "quarantine/features",
        "PREDICTIONS": "predictions/flights",
        "MONITORING_REPORTS": "reports/monitoring",
        "MONITORING_LOG": "monitoring/daily",
        "PROMOTION_HISTORY": "monitoring/promotions",
        "FEATURES_DAILY_CHECK": "features/flights_daily_check",
        "FEATURES_BENCH_COLD": "features/bench_cold",
    }
    assert {name: e.label for name, e in catalog.entries().items()} == expected
    assert catalog.FEATURES.path("2013-01-05", tmp_path) == tmp_path / "features/flights/ds=2013-01-05"
    assert catalog.FEATURES_CANDIDATE.partition(DAY) == "features/flights_candidate/ds=2013-01-05"
    assert (catalog.FEATURES.asset, catalog.FEATURES.asset_uri) == ("flights_features", "file:///flywheel/lake/features/flights")
    assert (catalog.PREDICTIONS.asset, catalog.PREDICTIONS.asset_uri) == (
        "flights_predictions", "file:///flywheel/lake/predictions/flights",
    )  # fmt: skip
    assert (catalog.DRIFT_ASSET, catalog.DRIFT_ASSET_URI) == ("drift", "file:///flywheel/lake/monitoring/drift")
    assert catalog.LANDING_FLIGHTS.asset_uri is None
    assert (catalog.LANDING_FLIGHTS.gate, catalog.FEATURES.gate) == ("landing", "features")


def test_features_output_is_the_cataloged_dataset_or_an_ad_hoc_one(tmp_path: Path) -> None:
    assert catalog.features_output("flights_candidate") is catalog.FEATURES_CANDIDATE
    assert catalog.features_output("flights") is catalog.FEATURES
    scratch = catalog.features_output("flights_guard")
    assert scratch.path(DAY, tmp_path) == tmp_path / "features/flights_guard/ds=2013-01-05"
    assert scratch not in catalog.entries().values()


def test_entries_delegate_to_the_lake(tmp_path: Path) -> None:
    frame = pd.DataFrame({"ds": [DAY.isoformat()], "x": [1]})
    path = catalog.FEATURES_CANDIDATE.write_frame(frame, DAY, tmp_path, {"_manifest.json": {"rows": 1}})
    assert path == lake.partition_path("features", "flights_candidate", DAY, tmp_path)
    assert catalog.FEATURES_CANDIDATE.exists(DAY, tmp_path)
    assert catalog.FEATURES_CANDIDATE.version(DAY, tmp_path) == lake.version("features", "flights_candidate", DAY, tmp_path)
    assert catalog.FEATURES_CANDIDATE.list_partitions(tmp_path) == [DAY]
    moved = catalog.FEATURES_CANDIDATE.move_to(catalog.QUARANTINE_FEATURES, DAY, tmp_path)
    assert moved == tmp_path / "quarantine/features/ds=2013-01-05"
    assert not catalog.FEATURES_CANDIDATE.exists(DAY, tmp_path)
    pd.testing.assert_frame_equal(catalog.QUARANTINE_FEATURES.read_frame(DAY, tmp_path), frame)
    with catalog.MONITORING_REPORTS.staged(DAY, tmp_path) as staging:
        (staging / "report.html").write_text("<html/>")
    assert (catalog.MONITORING_REPORTS.path(DAY, tmp_path) / "report.html").is_file()
    assert catalog.QUARANTINE_FEATURES.delete(DAY, tmp_path)
    assert not catalog.QUARANTINE_FEATURES.exists(DAY, tmp_path)
    with catalog.FEATURES.scratch(tmp_path) as folder:
        assert folder.parent.parent == catalog.FEATURES.dir(tmp_path)
    assert catalog.FEATURES.sweep(tmp_path) == []


def test_what_the_writers_write_is_cataloged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writers that run without Spark, GX, MLflow or a model, run for real: every folder they make
    under the lake is a catalog entry (the others are pinned by the static checks above)."""
    from flywheel import landing
    from flywheel.drift import daily_log
    from flywheel.registry import history

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    for name in ("FLYWHEEL_LAKE", "FLYWHEEL_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load()
    landing.land(DAY, settings)
    landing.quarantine_unlandable(DAY + dt.timedelta(days=1), "no source file", settings.lake)
    row = {c: None for c in daily_log.HISTORY_COLUMNS} | {
        "ds": DAY.isoformat(), "champion_version": 1, "n_drifted": 0, "signal": False, "streak": 0, "decision": "ok",
    }  # fmt: skip
    daily_log.write_row(row, DAY, settings)
    history.append_record(settings, {"decision": "promoted", "source": "training", "version": 1}, lock=False)

    written = {(z.name, d.name) for z in settings.lake.iterdir() for d in z.iterdir()}
    cataloged = {(str(e.zone), e.dataset) for e in catalog.entries().values()}
    assert written == {("landing", "flights"), ("quarantine", "flights"), ("monitoring", "daily"), ("monitoring", "promotions")}
    assert written <= cataloged


def test_the_readme_table_is_the_catalog() -> None:
    assert catalog.markdown_table() in (REPO / "README.md").read_text(), (
        "README's catalog table differs from flywheel.catalog.markdown_table(): paste it into 'The lake'"
    )
