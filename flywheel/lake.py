"""The lake: Hive-style daily partitions ``<lake>/<zone>/<dataset>/ds=YYYY-MM-DD/``.

A partition is a pointer to an immutable version: ``ds=D`` is a relative symlink to
``.versions/ds=D/<version>/``. A write fills a new ``<version>.staging`` folder, renames it to
``<version>`` and then swaps the pointer with one atomic ``rename(2)`` of a new symlink over the
old one, so a reader (Spark, pyarrow, pandas; all follow the link and skip the hidden
``.versions``) sees the complete old version or the complete new one, never a gap or a mix.
A rerun replaces the partition; nothing is appended.

- One writer per partition: a writer holds an exclusive ``flock`` on ``.versions/ds=D/.lock``
  from its first byte to the swap. A second writer of the same day fails at once with
  :class:`PartitionBusy` naming the holder, and leaves the partition as the winner writes it.
  The lock lives beside the data, so workers that share only the lake exclude each other (on
  NFS, flock is forwarded to the server by Linux clients).
- Leftovers are swept under that lock: ``*.staging`` folders of a killed writer at once, a
  superseded version once it is :data:`GRACE_S` old (a reader that resolved the old pointer
  just before a swap keeps its files meanwhile), dangling pointers, and scratch folders whose
  writer died (:func:`scratch`). Every publish sweeps its own partition; ``python -m
  flywheel.lake sweep`` sweeps everything.
- An older lake's plain ``ds=D`` folder is adopted as a version by the day's first write (once, not atomic).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import catalog, config
from flywheel.faults import failpoint
from flywheel.locks import flock

if TYPE_CHECKING:
    import pandas as pd

VERSIONS = ".versions"
SCRATCH = ".scratch"
GRACE_S = 600.0  # how long a superseded version stays for readers that resolved it before the swap



class LakeError(RuntimeError):
    """A partition is missing, unreadable, or addressed wrongly."""


class PartitionBusy(LakeError):
    """Another writer holds the partition; this one changed nothing."""


def parse_ds(ds: str | dt.date) -> dt.date:
    """``'2013-01-05'`` -> date; anything else is a clear error."""
    if isinstance(ds, dt.datetime):
        return ds.date()
    if isinstance(ds, dt.date):
        return ds
    try:
        return dt.date.fromisoformat(str(ds))
    except ValueError as exc:
        raise LakeError(f"partition date {ds!r} is not YYYY-MM-DD") from exc


def days_between(first: str | dt.date, last: str | dt.date) -> list[dt.date]:
    """Every day of ``first..last`` (inclusive), in order; a reversed range is a clear error."""
    start, end = parse_ds(first), parse_ds(last)
    if end < start:
        raise LakeError(f"day range {start}..{end} ends before it starts")
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _root(lake: Path | None) -> Path:
    return lake if lake is not None else config.load().lake


def dataset_path(zone: str, dataset: str, lake: Path | None = None) -> Path:
    if zone not in catalog.ZONES:
        raise LakeError(f"unknown lake zone {zone!r}; zones are {', '.join(catalog.ZONES)}")
    return _root(lake) / zone / dataset


def partition_path(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> Path:
    return dataset_path(zone, dataset, lake) / f"ds={parse_ds(ds).isoformat()}"


def versions_dir(partition: Path) -> Path:
    return partition.parent / VERSIONS / partition.name


def exists(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> bool:
    return partition_path(zone, dataset, ds, lake).is_dir()


def version(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> str | None:
    """The id of the partition's current version (``None``: no partition; ``"unversioned"``: an old plain folder)."""
    return version_of(partition_path(zone, dataset, ds, lake))


def version_of(partition: Path) -> str | None:
    return (Path(os.readlink(partition)).name if partition.is_symlink() else "unversioned") if partition.is_dir() else None


def list_partitions(zone: str, dataset: str, lake: Path | None = None) -> list[dt.date]:
    """Published partitions of a dataset, oldest first (versions, staging and scratch are hidden)."""
    base = dataset_path(zone, dataset, lake)
    if not base.is_dir():
        return []
    return sorted(parse_ds(p.name[3:]) for p in base.iterdir() if p.name.startswith("ds=") and p.is_dir())


def partition_lock(partition: Path) -> Any:
    """The one-writer lock of a partition (see the module docstring)."""
    return flock(versions_dir(partition) / ".lock", f"{partition.parent.parent.name}/{partition.parent.name}/{partition.name}", PartitionBusy)


def _new_version() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def _swap(partition: Path, new: Path) -> None:
    """Point ``partition`` at the version folder ``new`` with one atomic rename; mark the old version superseded."""
    link = partition.parent / f".link-{partition.name}-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(new, partition.parent), link)
    old: Path | None = None
    if partition.is_symlink():
        old = partition.parent / os.readlink(partition)
    elif partition.is_dir():  # an unversioned partition of an older lake: adopt it (once)
        old = versions_dir(partition) / f"{_new_version()}-unversioned"
        partition.rename(old)
    os.replace(link, partition)
    failpoint("lake.publish.swapped")
    if old is not None and old.is_dir():
        os.utime(old)  # superseded now: its grace period starts


def publish(staging: Path, target: Path) -> None:
    """Make the fully written folder ``staging`` the partition ``target`` (replacing any earlier one)."""
    with partition_lock(target):
        vdir = versions_dir(target)
        vdir.mkdir(parents=True, exist_ok=True)
        new = vdir / _new_version()
        staging.rename(new)
        failpoint("lake.publish.staged")  # complete on disk, not yet visible
        _swap(target, new)
        sweep_partition(target)


@contextmanager
def staged_partition(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> Iterator[Path]:
    """Yield an empty staging folder; publish it as the partition if the block succeeds.

    The partition's writer lock is held from the start; on an exception the staging folder is
    removed and the published partition is untouched.
    """
    target = partition_path(zone, dataset, ds, lake)
    with partition_lock(target):
        vdir = versions_dir(target)
        vdir.mkdir(parents=True, exist_ok=True)
        staging = vdir / f"{_new_version()}.staging"
        staging.mkdir()
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish(staging, target)


def write_frame(
    df: pd.DataFrame,
    zone: str,
    dataset: str,
    ds: str | dt.date,
    lake: Path | None = None,
    extra_files: dict[str, Any] | None = None,
) -> Path:
    """Write one pandas frame as the partition's single Parquet file (plus optional JSON files)."""
    with staged_partition(zone, dataset, ds, lake) as staging:
        df.to_parquet(staging / "part-00000.parquet", index=False)
        for name, payload in (extra_files or {}).items():
            (staging / name).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    return partition_path(zone, dataset, ds, lake)


def read_frame(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> pd.DataFrame:
    """The partition's rows, read from the version it points to when the read starts."""
    import pandas as pd

    path = partition_path(zone, dataset, ds, lake)
    if not path.is_dir():
        raise LakeError(f"partition {zone}/{dataset}/ds={parse_ds(ds)} does not exist under {_root(lake)}")
    files = sorted(path.resolve().glob("*.parquet"))
    if not files:
        raise LakeError(f"partition {path} holds no Parquet file")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def move_partition(
    src_zone: str,
    dst_zone: str,
    dataset: str,
    ds: str | dt.date,
    lake: Path | None = None,
    dst_dataset: str | None = None,
) -> Path:
    """Move a partition to another zone or dataset (e.g. landing -> quarantine), replacing what was there.

    The destination gets a new version made of hard links to the source's files (no data copied),
    published like any write; only then does the source's pointer go. A crash in between leaves
    the data in both places, never in neither.
    """
    src = partition_path(src_zone, dataset, ds, lake)
    dst = partition_path(dst_zone, dst_dataset or dataset, ds, lake)
    with partition_lock(src), partition_lock(dst):
        if not src.is_dir():
            raise LakeError(f"cannot move {src}: it does not exist")
        vdir = versions_dir(dst)
        vdir.mkdir(parents=True, exist_ok=True)
        staging = vdir / f"{_new_version()}.staging"
        shutil.copytree(src.resolve(), staging, copy_function=os.link)
        publish(staging, dst)
        failpoint("lake.move.published")  # the data is in both places until the next line
        delete_partition(src_zone, dataset, ds, lake)
        sweep_partition(src)
    return dst


def delete_partition(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> bool:
    """Remove the partition's pointer (its version goes after the grace period); False if there was none."""
    path = partition_path(zone, dataset, ds, lake)
    with partition_lock(path):
        if path.is_symlink():
            old = path.resolve()
            path.unlink()
            if old.is_dir():
                os.utime(old)
                return True
            return False
        if path.is_dir():
            shutil.rmtree(path)
            return True
    return False


def sweep_partition(partition: Path, grace_s: float = GRACE_S) -> list[Path]:
    """Remove what no reader can reach: staging of dead writers, dangling pointers and pointer
    temporaries, superseded versions older than ``grace_s``. Skips a partition being written."""
    removed: list[Path] = []
    try:
        with partition_lock(partition):
            if partition.is_symlink() and not partition.is_dir():
                partition.unlink()
                removed.append(partition)
            for link in partition.parent.glob(f".link-{partition.name}-*"):
                link.unlink()
                removed.append(link)
            vdir = versions_dir(partition)
            current = partition.resolve() if partition.is_symlink() else None
            cutoff = time.time() - grace_s
            for entry in sorted(vdir.iterdir()) if vdir.is_dir() else []:
                if entry.name == ".lock" or entry == current:
                    continue
                if entry.name.endswith(".staging") or entry.stat().st_mtime <= cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
    except PartitionBusy:
        return removed
    return removed


@contextmanager
def scratch(zone: str, dataset: str, lake: Path | None = None) -> Iterator[Path]:
    """A job's private folder beside the dataset, removed at the end (or by a sweep once its job died)."""
    folder = dataset_path(zone, dataset, lake) / SCRATCH / uuid.uuid4().hex
    lock = folder.with_name(folder.name + ".lock")
    try:
        with flock(lock, f"scratch {folder}", PartitionBusy):
            try:
                yield folder
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        lock.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the last job out removes the empty .scratch


def sweep(lake: Path | None = None, grace_s: float = GRACE_S) -> list[Path]:
    """Sweep every dataset of the lake (see :func:`sweep_dataset`)."""
    removed: list[Path] = []
    for zone in catalog.ZONES:
        zone_dir = _root(lake) / zone
        for base in sorted(p for p in zone_dir.iterdir() if p.is_dir()) if zone_dir.is_dir() else []:
            removed += sweep_dataset(zone, base.name, lake, grace_s)
    return removed


def sweep_dataset(
    zone: str, dataset: str, lake: Path | None = None, grace_s: float = GRACE_S, partitions: bool = True
) -> list[Path]:
    """Remove the scratch folders of dead jobs and the older layout's leftovers of one dataset, and
    (``partitions``) sweep each of its partitions (:func:`sweep_partition`)."""
    base = dataset_path(zone, dataset, lake)
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    if partitions:
        names = {p.name for p in base.glob("ds=*")} | {p.name for p in (base / VERSIONS).glob("ds=*")}
        for name in sorted(names):
            removed += sweep_partition(base / name, grace_s)
    for leftover in base.glob(".*"):  # the unversioned layout's leftovers and a killed job's folder
        if leftover.name.startswith((".staging-", ".old-", ".job-")):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    for lock in sorted((base / SCRATCH).glob("*.lock")):
        try:
            with flock(lock, "scratch", PartitionBusy, reentrant=False):
                shutil.rmtree(lock.with_suffix(""), ignore_errors=True)
                removed.append(lock.with_suffix(""))
            lock.unlink(missing_ok=True)
        except PartitionBusy:
            continue
    with contextlib.suppress(OSError):  # missing, or a running job's scratch is in it
        (base / SCRATCH).rmdir()
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.lake", description="Lake maintenance.")
    sub = parser.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("sweep", help="remove leftovers of killed writers and superseded versions")
    sw.add_argument("--grace-s", type=float, default=GRACE_S, help="keep superseded versions younger than this")
    removed = sweep(grace_s=parser.parse_args(argv).grace_s)
    print("".join(f"removed {path}\n" for path in removed), end="")
    print(f"swept {config.load().lake}: {len(removed)} leftover(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
