"""flywheel.lake: Hive-style partition paths, atomic publish, rerun-replaces, moves."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from flywheel import lake
from flywheel.lake import LakeError

DAY = dt.date(2013, 1, 5)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake under tmp_path, also the configured one (so lake=None resolves here too)."""
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.delenv("FLYWHEEL_LAKE", raising=False)
    return tmp_path / "lake"


def _children(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# --- addressing ---------------------------------------------------------------------------------


def test_partition_path_is_hive_style(root: Path) -> None:
    assert lake.partition_path("landing", "flights", "2013-01-05", root) == root / "landing/flights/ds=2013-01-05"
    assert lake.partition_path("features", "flights", DAY, root) == root / "features/flights/ds=2013-01-05"
    assert lake.dataset_path("reports", "drift", root) == root / "reports/drift"


def test_partition_path_defaults_to_configured_lake(root: Path) -> None:
    assert lake.partition_path("landing", "flights", DAY) == root / "landing/flights/ds=2013-01-05"


def test_parse_ds_accepts_dates_datetimes_and_iso_strings() -> None:
    assert lake.parse_ds("2013-01-05") == DAY
    assert lake.parse_ds(DAY) == DAY
    assert lake.parse_ds(dt.datetime(2013, 1, 5, 23, 59, tzinfo=dt.UTC)) == DAY
    assert type(lake.parse_ds(dt.datetime(2013, 1, 5, 6))) is dt.date


@pytest.mark.parametrize("bad", ["2013-13-01", "2013-02-30", "yesterday", "", "05/01/2013"])
def test_parse_ds_rejects_non_dates(bad: str) -> None:
    with pytest.raises(LakeError) as info:
        lake.parse_ds(bad)
    assert str(info.value) == f"partition date {bad!r} is not YYYY-MM-DD"


def test_unknown_zone_is_an_error(root: Path) -> None:
    with pytest.raises(LakeError) as info:
        lake.partition_path("bronze", "flights", DAY, root)
    assert str(info.value) == (
        "unknown lake zone 'bronze'; zones are landing, quarantine, features, predictions, reports, monitoring"
    )


# --- atomic, idempotent writes ------------------------------------------------------------------


def test_write_and_read_frame_round_trip(root: Path) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    path = lake.write_frame(df, "features", "flights", DAY, root, extra_files={"_meta.json": {"rows": 3}})
    assert path == root / "features/flights/ds=2013-01-05"
    assert _children(path) == ["_meta.json", "part-00000.parquet"]
    assert (path / "_meta.json").read_text() == '{\n  "rows": 3\n}'
    pd.testing.assert_frame_equal(lake.read_frame("features", "flights", DAY, root), df)
    assert lake.exists("features", "flights", DAY, root)
    # Only the published partition is left beside it: no staging or .old- folder.
    assert _children(path.parent) == ["ds=2013-01-05"]


def test_rerun_replaces_the_partition(root: Path) -> None:
    first = pd.DataFrame({"a": [1, 2, 3]})
    second = pd.DataFrame({"a": [10, 20]})
    lake.write_frame(first, "features", "flights", DAY, root, extra_files={"_old.json": {}})
    path = lake.write_frame(second, "features", "flights", DAY, root)
    pd.testing.assert_frame_equal(lake.read_frame("features", "flights", DAY, root), second)
    # Files of the first run are gone too (replace, not merge).
    assert _children(path) == ["part-00000.parquet"]
    assert _children(path.parent) == ["ds=2013-01-05"]


def test_staging_is_hidden_while_open_then_published(root: Path) -> None:
    dataset = root / "landing/flights"
    with lake.staged_partition("landing", "flights", DAY, root) as staging:
        assert staging.parent == dataset
        assert staging.name.startswith(".staging-ds=2013-01-05-")
        assert _children(staging) == []
        (staging / "x.txt").write_text("new")
        assert lake.list_partitions("landing", "flights", root) == []
        assert not lake.exists("landing", "flights", DAY, root)
    assert lake.list_partitions("landing", "flights", root) == [DAY]
    assert (dataset / "ds=2013-01-05/x.txt").read_text() == "new"
    assert _children(dataset) == ["ds=2013-01-05"]


def test_failed_block_leaves_old_partition_untouched(root: Path) -> None:
    dataset = root / "landing/flights"
    with lake.staged_partition("landing", "flights", DAY, root) as staging:
        (staging / "x.txt").write_text("old")

    with pytest.raises(ZeroDivisionError):
        with lake.staged_partition("landing", "flights", DAY, root) as staging:
            (staging / "x.txt").write_text("half-written")
            # While the new version is being written, readers still see the old one.
            assert (dataset / "ds=2013-01-05/x.txt").read_text() == "old"
            1 / 0  # noqa: B018

    assert (dataset / "ds=2013-01-05/x.txt").read_text() == "old"
    assert _children(dataset) == ["ds=2013-01-05"]


def test_failed_first_write_publishes_nothing(root: Path) -> None:
    with pytest.raises(ValueError, match="boom"):
        with lake.staged_partition("features", "flights", DAY, root):
            raise ValueError("boom")
    assert lake.list_partitions("features", "flights", root) == []
    assert not lake.exists("features", "flights", DAY, root)
    assert _children(root / "features/flights") == []


def test_publish_replaces_an_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "ds=2013-01-05"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    lake.publish(staging, target)
    assert _children(target) == ["new.txt"]
    assert _children(tmp_path) == ["ds=2013-01-05"]


# --- listing, reading, moving, deleting ---------------------------------------------------------


def test_list_partitions_sorted_and_ignores_other_entries(root: Path) -> None:
    for day in ["2013-03-01", "2013-01-05", "2013-12-31", "2013-01-04"]:
        with lake.staged_partition("landing", "flights", day, root):
            pass
    dataset = root / "landing/flights"
    (dataset / ".staging-ds=2013-02-01-deadbeef").mkdir()
    (dataset / "_SUCCESS").write_text("")
    (dataset / "notes").mkdir()
    assert lake.list_partitions("landing", "flights", root) == [
        dt.date(2013, 1, 4),
        dt.date(2013, 1, 5),
        dt.date(2013, 3, 1),
        dt.date(2013, 12, 31),
    ]


def test_list_partitions_of_missing_dataset_is_empty(root: Path) -> None:
    assert lake.list_partitions("predictions", "flights", root) == []


def test_read_frame_of_missing_partition_names_it(root: Path) -> None:
    with pytest.raises(LakeError) as info:
        lake.read_frame("features", "flights", "2013-01-05", root)
    assert str(info.value) == f"partition features/flights/ds=2013-01-05 does not exist under {root}"


def test_read_frame_of_partition_without_parquet(root: Path) -> None:
    with lake.staged_partition("features", "flights", DAY, root) as staging:
        (staging / "_meta.json").write_text("{}")
    with pytest.raises(LakeError) as info:
        lake.read_frame("features", "flights", DAY, root)
    assert str(info.value) == f"partition {root / 'features/flights/ds=2013-01-05'} holds no Parquet file"


def test_move_partition_to_quarantine_replaces_target(root: Path) -> None:
    lake.write_frame(pd.DataFrame({"a": [1]}), "quarantine", "flights", DAY, root, extra_files={"_stale.json": {}})
    lake.write_frame(pd.DataFrame({"a": [2, 3]}), "landing", "flights", DAY, root)

    dst = lake.move_partition("landing", "quarantine", "flights", DAY, root)

    assert dst == root / "quarantine/flights/ds=2013-01-05"
    assert not lake.exists("landing", "flights", DAY, root)
    assert _children(dst) == ["part-00000.parquet"]
    pd.testing.assert_frame_equal(lake.read_frame("quarantine", "flights", DAY, root), pd.DataFrame({"a": [2, 3]}))
    assert _children(root / "quarantine/flights") == ["ds=2013-01-05"]
    assert _children(root / "landing/flights") == []


def test_move_partition_to_another_dataset(root: Path) -> None:
    lake.write_frame(pd.DataFrame({"a": [1]}), "features", "flights", DAY, root)
    dst = lake.move_partition("features", "quarantine", "flights", DAY, root, dst_dataset="flights_features")
    assert dst == root / "quarantine/flights_features/ds=2013-01-05"
    assert lake.list_partitions("quarantine", "flights_features", root) == [DAY]
    assert lake.list_partitions("quarantine", "flights", root) == []
    assert lake.list_partitions("features", "flights", root) == []


def test_move_missing_partition_is_an_error(root: Path) -> None:
    with pytest.raises(LakeError) as info:
        lake.move_partition("landing", "quarantine", "flights", DAY, root)
    assert str(info.value) == f"cannot move {root / 'landing/flights/ds=2013-01-05'}: it does not exist"
    assert not (root / "quarantine").exists()


def test_delete_partition(root: Path) -> None:
    lake.write_frame(pd.DataFrame({"a": [1]}), "predictions", "flights", DAY, root)
    assert lake.delete_partition("predictions", "flights", DAY, root) is True
    assert not lake.exists("predictions", "flights", DAY, root)
    assert lake.delete_partition("predictions", "flights", DAY, root) is False
