"""The lake: Hive-style daily partitions ``<lake>/<zone>/<dataset>/ds=YYYY-MM-DD/``.

Every write goes to a hidden staging folder beside the partition and is then published
by ``os.replace``-style renames, so a reader sees the old partition, no partition, or the
new one, never a half-written one. A rerun replaces the partition; nothing is appended.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import config

if TYPE_CHECKING:
    import pandas as pd

ZONES = ("landing", "quarantine", "features", "predictions", "reports", "monitoring")


class LakeError(RuntimeError):
    """A partition is missing, unreadable, or addressed wrongly."""


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
    if zone not in ZONES:
        raise LakeError(f"unknown lake zone {zone!r}; zones are {', '.join(ZONES)}")
    return _root(lake) / zone / dataset


def partition_path(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> Path:
    return dataset_path(zone, dataset, lake) / f"ds={parse_ds(ds).isoformat()}"


def exists(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> bool:
    return partition_path(zone, dataset, ds, lake).is_dir()


def list_partitions(zone: str, dataset: str, lake: Path | None = None) -> list[dt.date]:
    """Published partitions of a dataset, oldest first (staging folders are hidden)."""
    base = dataset_path(zone, dataset, lake)
    if not base.is_dir():
        return []
    return sorted(parse_ds(p.name[3:]) for p in base.iterdir() if p.is_dir() and p.name.startswith("ds="))


def publish(staging: Path, target: Path) -> None:
    """Move a fully written staging folder into place, replacing any earlier partition."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)


@contextmanager
def staged_partition(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> Iterator[Path]:
    """Yield an empty staging folder; publish it as the partition if the block succeeds.

    On an exception the staging folder is removed and the published partition is untouched.
    """
    target = partition_path(zone, dataset, ds, lake)
    staging = target.parent / f".staging-{target.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
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
    import pandas as pd

    path = partition_path(zone, dataset, ds, lake)
    if not path.is_dir():
        raise LakeError(f"partition {zone}/{dataset}/ds={parse_ds(ds)} does not exist under {_root(lake)}")
    files = sorted(path.glob("*.parquet"))
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
    """Move a partition to another zone or dataset (e.g. landing -> quarantine), replacing what was there."""
    src = partition_path(src_zone, dataset, ds, lake)
    dst = partition_path(dst_zone, dst_dataset or dataset, ds, lake)
    if not src.is_dir():
        raise LakeError(f"cannot move {src}: it does not exist")
    staging = dst.parent / f".staging-{dst.name}-{uuid.uuid4().hex[:8]}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(staging)
    publish(staging, dst)
    return dst


def delete_partition(zone: str, dataset: str, ds: str | dt.date, lake: Path | None = None) -> bool:
    path = partition_path(zone, dataset, ds, lake)
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False
