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


def _visible(path: Path) -> list[str]:
    """What a reader listing the folder sees (Spark and pyarrow skip hidden names)."""
    return sorted(p.name for p in path.iterdir() if not p.name.startswith((".", "_")))


def _versions(partition: Path) -> list[str]:
    return sorted(p.name for p in lake.versions_dir(partition).iterdir() if p.name != ".lock")


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
    # The partition is a pointer to its one version; nothing else is left beside it.
    assert _children(path.parent) == [".versions", "ds=2013-01-05"]
    assert path.is_symlink() and _versions(path) == [lake.version("features", "flights", DAY, root)]


def test_rerun_replaces_the_partition(root: Path) -> None:
    first = pd.DataFrame({"a": [1, 2, 3]})
    second = pd.DataFrame({"a": [10, 20]})
    lake.write_frame(first, "features", "flights", DAY, root, extra_files={"_old.json": {}})
    path = lake.write_frame(second, "features", "flights", DAY, root)
    pd.testing.assert_frame_equal(lake.read_frame("features", "flights", DAY, root), second)
    # Files of the first run are gone too (replace, not merge).
    assert _children(path) == ["part-00000.parquet"]
    assert _visible(path.parent) == ["ds=2013-01-05"]
    # The superseded version stays for the grace period (a reader may still hold it), then is swept.
    assert len(_versions(path)) == 2
    assert lake.sweep_partition(path) == []
    swept = lake.sweep_partition(path, grace_s=0)
    assert [p.name for p in swept] != [] and _versions(path) == [lake.version("features", "flights", DAY, root)]


def test_staging_is_hidden_while_open_then_published(root: Path) -> None:
    dataset = root / "landing/flights"
    with lake.staged_partition("landing", "flights", DAY, root) as staging:
        assert staging.parent == dataset / ".versions/ds=2013-01-05"
        assert staging.name.endswith(".staging")
        assert _children(staging) == []
        (staging / "x.txt").write_text("new")
        assert lake.list_partitions("landing", "flights", root) == []
        assert not lake.exists("landing", "flights", DAY, root)
    assert lake.list_partitions("landing", "flights", root) == [DAY]
    assert (dataset / "ds=2013-01-05/x.txt").read_text() == "new"
    assert _visible(dataset) == ["ds=2013-01-05"]


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
    assert _visible(dataset) == ["ds=2013-01-05"]
    assert len(_versions(dataset / "ds=2013-01-05")) == 1  # the failed staging is gone


def test_failed_first_write_publishes_nothing(root: Path) -> None:
    with pytest.raises(ValueError, match="boom"):
        with lake.staged_partition("features", "flights", DAY, root):
            raise ValueError("boom")
    assert lake.list_partitions("features", "flights", root) == []
    assert not lake.exists("features", "flights", DAY, root)
    assert _visible(root / "features/flights") == []
    assert _versions(root / "features/flights/ds=2013-01-05") == []


def test_publish_replaces_an_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "ds=2013-01-05"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    lake.publish(staging, target)
    assert _children(target) == ["new.txt"]
    assert _visible(tmp_path) == ["ds=2013-01-05"] and target.is_symlink()
    # The plain folder of an older lake became a version: superseded, swept after the grace period.
    assert lake.sweep_partition(target, grace_s=0)[0].name.endswith("-unversioned")


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
    assert _visible(root / "quarantine/flights") == ["ds=2013-01-05"]
    assert _visible(root / "landing/flights") == []


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
    assert not (root / "quarantine/flights/ds=2013-01-05").exists()


def test_delete_partition(root: Path) -> None:
    lake.write_frame(pd.DataFrame({"a": [1]}), "predictions", "flights", DAY, root)
    assert lake.delete_partition("predictions", "flights", DAY, root) is True
    assert not lake.exists("predictions", "flights", DAY, root)
    assert lake.delete_partition("predictions", "flights", DAY, root) is False


# --- no window, one writer, sweeping -------------------------------------------------------------


def test_readers_never_see_a_missing_or_mixed_partition_while_it_is_replaced(root: Path) -> None:
    """A reader looping while a writer republishes the day sees a complete old or new version every time."""
    import threading

    lake.write_frame(pd.DataFrame({"a": [0] * 50}), "features", "flights", DAY, root)
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            try:
                values = set(lake.read_frame("features", "flights", DAY, root)["a"])
            except Exception as exc:
                errors.append(repr(exc))
                return
            if len(values) != 1:
                errors.append(f"mixed versions {values}")
            seen.update(values)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 120):
            lake.write_frame(pd.DataFrame({"a": [n] * 50}), "features", "flights", DAY, root)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert len(seen) > 1  # the reader really read while the writer wrote


def test_a_second_writer_of_a_day_fails_and_the_first_wins(root: Path) -> None:
    import threading

    entered, release = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def other_writer() -> None:
        try:
            with lake.staged_partition("features", "flights", DAY, root) as staging:
                (staging / "x.txt").write_text("first")
                entered.set()
                release.wait(10)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert entered.wait(10)
    with pytest.raises(lake.PartitionBusy) as info:
        with lake.staged_partition("features", "flights", DAY, root) as staging:
            (staging / "x.txt").write_text("second")
    release.set()
    thread.join()
    assert outcome == []
    assert "features/flights/ds=2013-01-05 is being written by pid" in str(info.value)
    assert "changed nothing" in str(info.value)
    assert (root / "features/flights/ds=2013-01-05/x.txt").read_text() == "first"
    assert len(_versions(root / "features/flights/ds=2013-01-05")) == 1


def test_sweep_removes_what_a_killed_writer_left(root: Path) -> None:
    partition = root / "landing/flights/ds=2013-01-05"
    lake.write_frame(pd.DataFrame({"a": [1]}), "landing", "flights", DAY, root)
    current = lake.version("landing", "flights", DAY, root)
    vdir = lake.versions_dir(partition)
    (vdir / "20130105T000000-dead0001.staging").mkdir()  # killed while writing
    (vdir / "20130105T000000-dead0002").mkdir()  # killed after staging, before the swap
    (partition.parent / ".link-ds=2013-01-05-dead0003").symlink_to("nowhere")  # killed at the swap
    lake.write_frame(pd.DataFrame({"a": [1]}), "landing", "flights", "2013-01-06", root)
    lake.delete_partition("landing", "flights", "2013-01-06", root)  # its version waits for the grace period
    dead_scratch = root / "landing/flights/.scratch/deadbeef"
    dead_scratch.mkdir(parents=True)
    (dead_scratch.parent / "deadbeef.lock").write_text("pid 1")
    with lake.scratch("landing", "flights", root) as live_scratch:
        live_scratch.mkdir(parents=True)
        removed = lake.sweep(root, grace_s=0)
        assert live_scratch.is_dir()  # a running job's scratch stays
    names = {p.name for p in removed}
    assert {"20130105T000000-dead0001.staging", "20130105T000000-dead0002", ".link-ds=2013-01-05-dead0003", "deadbeef"} <= names
    assert _versions(partition) == [current]
    assert lake.read_frame("landing", "flights", DAY, root)["a"].tolist() == [1]
    assert _versions(root / "landing/flights/ds=2013-01-06") == []
    assert lake.sweep(root, grace_s=0) == []  # nothing left to sweep


def test_move_leaves_the_data_in_both_places_until_the_source_goes(root: Path) -> None:
    """Hard links: the destination is published before the source's pointer is removed."""
    lake.write_frame(pd.DataFrame({"a": [7]}), "features", "flights_candidate", DAY, root)
    src_file = next((root / "features/flights_candidate/ds=2013-01-05").resolve().glob("*.parquet"))
    dst = lake.move_partition("features", "features", "flights_candidate", DAY, root, dst_dataset="flights")
    moved = next(dst.resolve().glob("*.parquet"))
    assert moved.stat().st_ino == src_file.stat().st_ino  # the same file, linked, not copied
    assert not lake.exists("features", "flights_candidate", DAY, root)


def test_version_of_a_partition(root: Path) -> None:
    assert lake.version("features", "flights", DAY, root) is None
    lake.write_frame(pd.DataFrame({"a": [1]}), "features", "flights", DAY, root)
    first = lake.version("features", "flights", DAY, root)
    lake.write_frame(pd.DataFrame({"a": [1]}), "features", "flights", DAY, root)
    second = lake.version("features", "flights", DAY, root)
    assert first is not None and second is not None and first < second  # named by time, then a random suffix
