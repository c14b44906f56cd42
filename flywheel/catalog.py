"""The catalog: every dataset of the lake, by name, and the one place that spells a zone or dataset.

A dataset lives at ``<lake>/<zone>/<dataset>/`` (partitions ``ds=YYYY-MM-DD/``, see :mod:`flywheel.lake`).
Each is one :class:`Dataset` constant below saying what it holds, who writes and reads it and which
Airflow asset (if any) stands for it; its methods delegate to :mod:`flywheel.lake`, so code reads
``catalog.FEATURES.read_frame(day)`` and never ``lake.read_frame("features", "flights", day)``.
:data:`ZONES` is the list :mod:`flywheel.lake` validates zones against. The README's catalog table is
:func:`markdown_table` (a test keeps the two the same).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import lake

if TYPE_CHECKING:
    import pandas as pd


class Zone(StrEnum):
    """The lake's zones, in the order data flows through them."""

    LANDING = "landing"
    QUARANTINE = "quarantine"
    FEATURES = "features"
    PREDICTIONS = "predictions"
    REPORTS = "reports"
    MONITORING = "monitoring"


ZONES: tuple[Zone, ...] = tuple(Zone)
# The partition key every partitioned dataset is keyed on (``ds=YYYY-MM-DD``).
KEY = "ds"
# Airflow asset URIs name the dataset's place in the lake, whatever the lake's real root.
ASSET_URI_ROOT = "file:///flywheel/lake"


@dataclass(frozen=True)
class Dataset:
    """One dataset of the lake: where it is, what it holds, who writes and reads it."""

    zone: Zone
    dataset: str
    format: str
    written_by: str  # module (task)
    read_by: tuple[str, ...] = ()
    asset: str | None = None  # the Airflow asset whose events say a partition was published
    gate: str | None = None  # the data gate that publishes it (named after its zone), if one does
    key: str | None = KEY  # None: not partitioned (one file, appended)

    @property
    def label(self) -> str:
        """``zone/dataset``, as messages name it."""
        return f"{self.zone}/{self.dataset}"

    @property
    def asset_uri(self) -> str | None:
        return f"{ASSET_URI_ROOT}/{self.label}" if self.asset else None

    def partition(self, ds: str | dt.date) -> str:
        """``zone/dataset/ds=YYYY-MM-DD``: the partition as messages and manifests name it."""
        return f"{self.label}/{self.key or KEY}={lake.parse_ds(ds).isoformat()}"

    def dir(self, root: Path | None = None) -> Path:
        """The dataset's folder under the lake ``root`` (default: the configured lake)."""
        return lake.dataset_path(self.zone, self.dataset, root)

    def path(self, ds: str | dt.date, root: Path | None = None) -> Path:
        return lake.partition_path(self.zone, self.dataset, ds, root)

    def exists(self, ds: str | dt.date, root: Path | None = None) -> bool:
        return lake.exists(self.zone, self.dataset, ds, root)

    def version(self, ds: str | dt.date, root: Path | None = None) -> str | None:
        return lake.version(self.zone, self.dataset, ds, root)

    def list_partitions(self, root: Path | None = None) -> list[dt.date]:
        return lake.list_partitions(self.zone, self.dataset, root)

    def read_frame(self, ds: str | dt.date, root: Path | None = None) -> pd.DataFrame:
        return lake.read_frame(self.zone, self.dataset, ds, root)

    def write_frame(
        self, df: pd.DataFrame, ds: str | dt.date, root: Path | None = None, extra_files: dict[str, Any] | None = None
    ) -> Path:
        return lake.write_frame(df, self.zone, self.dataset, ds, root, extra_files)

    @contextmanager
    def staged(self, ds: str | dt.date, root: Path | None = None) -> Iterator[Path]:
        """A staging folder published as the partition when the block succeeds (:func:`lake.staged_partition`)."""
        with lake.staged_partition(self.zone, self.dataset, ds, root) as staging:
            yield staging

    def delete(self, ds: str | dt.date, root: Path | None = None) -> bool:
        return lake.delete_partition(self.zone, self.dataset, ds, root)

    def move_to(self, dst: Dataset, ds: str | dt.date, root: Path | None = None) -> Path:
        """Move the partition of ``ds`` to the dataset ``dst`` (:func:`lake.move_partition`)."""
        return lake.move_partition(self.zone, dst.zone, self.dataset, ds, root, dst_dataset=dst.dataset)

    def lock(self, ds: str | dt.date, root: Path | None = None) -> Any:
        """The partition's one-writer lock (:func:`lake.partition_lock`)."""
        return lake.partition_lock(self.path(ds, root))

    @contextmanager
    def scratch(self, root: Path | None = None) -> Iterator[Path]:
        """A job's private folder beside the dataset (:func:`lake.scratch`)."""
        with lake.scratch(self.zone, self.dataset, root) as folder:
            yield folder

    def sweep(self, root: Path | None = None, partitions: bool = True) -> list[Path]:
        return lake.sweep_dataset(self.zone, self.dataset, root, partitions=partitions)


# --- the lake's datasets, in the order data flows ------------------------------------------------

LANDING_FLIGHTS = Dataset(
    Zone.LANDING,
    "flights",
    "the source's files as they came (`<table>.parquet` or `.csv`), `_manifest.json`; "
    "`canonical/<table>.parquet` and `_validation.json` once the landing gate passed",
    "flywheel.landing (land); canonical/ by flywheel.validation.landing_gate (validate_landing)",
    ("flywheel.validation.landing_gate", "spark_jobs.build_features", "flywheel.features", "flywheel.ui", "flywheel.demo_summary"),
    gate="landing",
)
QUARANTINE_LANDING = Dataset(
    Zone.QUARANTINE,
    "flights",
    "a landed day that failed the landing gate, with `_validation.json` (only that file: a day that could not be landed)",
    "flywheel.validation.landing_gate (validate_landing); flywheel.landing (land)",
    ("flywheel.orchestration.days", "flywheel.landing", "flywheel.ui", "flywheel.demo_summary"),
)
FEATURES_CANDIDATE = Dataset(
    Zone.FEATURES,
    "flights_candidate",
    "Parquet, `_manifest.json`",
    "spark_jobs.build_features (build_features)",
    ("flywheel.validation.features_gate", "flywheel.orchestration.features"),
)
FEATURES = Dataset(
    Zone.FEATURES,
    "flights",
    "Parquet, `_manifest.json`, `_validation.json`",
    "flywheel.validation.features_gate (validate_features: the candidate, moved)",
    (
        "flywheel.scoring", "flywheel.training.data", "flywheel.drift.scored_day", "flywheel.compare",
        "flywheel.features", "flywheel.orchestration", "flywheel.ui", "flywheel.demo_summary",
    ),  # fmt: skip
    asset="flights_features",
    gate="features",
)
QUARANTINE_FEATURES = Dataset(
    Zone.QUARANTINE,
    "features",
    "a candidate that failed the features gate, with `_validation.json`",
    "flywheel.validation.features_gate (validate_features)",
    ("flywheel.orchestration.days", "flywheel.orchestration.features", "flywheel.ui", "flywheel.demo_summary"),
)
PREDICTIONS = Dataset(
    Zone.PREDICTIONS,
    "flights",
    "Parquet, `_manifest.json`",
    "flywheel.scoring (score)",
    ("flywheel.drift.scored_day", "flywheel.orchestration.monitoring", "flywheel.ui", "flywheel.demo_summary"),
    asset="flights_predictions",
)
MONITORING_REPORTS = Dataset(
    Zone.REPORTS,
    "monitoring",
    "`report.html` (Evidently), `metrics.json`",
    "flywheel.drift.publish (monitor)",
    ("flywheel.ui",),
)
MONITORING_LOG = Dataset(
    Zone.MONITORING,
    "daily",
    "Parquet, one row per monitored day",
    "flywheel.drift.daily_log (monitor)",
    ("flywheel.drift.monitor", "flywheel.registry.history", "flywheel.orchestration.monitoring", "flywheel.live", "flywheel.ui", "flywheel.demo"),
)
PROMOTION_HISTORY = Dataset(
    Zone.MONITORING,
    "promotions",
    "`history.jsonl`, one line per champion decision (appended)",
    "flywheel.registry.history (promote_or_reject, rollback)",
    ("flywheel.registry", "flywheel.orchestration", "plugins/flywheel_plugin.py", "flywheel.demo"),
    key=None,
)
# Throwaway outputs of the benches (removed by the bench that writes them, or left for a look).
FEATURES_DAILY_CHECK = Dataset(
    Zone.FEATURES,
    "flights_daily_check",
    "Parquet, `_manifest.json`",
    "bench/year_backfill.py (days built alone, compared with the range run's)",
    ("bench/year_backfill.py",),
)
FEATURES_BENCH_COLD = Dataset(
    Zone.FEATURES,
    "bench_cold",
    "Parquet, `_manifest.json`",
    "bench/feature_job.py (a cold spark-submit)",
)

# The quarantine datasets, in the order a day meets their gates.
QUARANTINES = (QUARANTINE_LANDING, QUARANTINE_FEATURES)
# The drift asset is an event, not a dataset: nothing is written at its URI (the evidence is the
# MONITORING_LOG row of the day, and the event's extra).
DRIFT_ASSET = "drift"
DRIFT_ASSET_URI = f"{ASSET_URI_ROOT}/{Zone.MONITORING}/drift"


def entries() -> dict[str, Dataset]:
    """Every cataloged dataset by its constant's name, in flow order."""
    return {name: value for name, value in globals().items() if isinstance(value, Dataset)}


def features_output(name: str) -> Dataset:
    """The features-zone dataset ``build_features --output-dataset NAME`` writes: the cataloged one of
    that name, else an uncataloged one (tests' throwaway outputs)."""
    for entry in entries().values():
        if entry.zone is Zone.FEATURES and entry.dataset == name:
            return entry
    return replace(FEATURES_CANDIDATE, dataset=name, written_by="spark_jobs.build_features (ad hoc)", read_by=())


def markdown_table() -> str:
    """The catalog as the README's table."""
    rows = ["| name | zone | dataset | format | written by | asset |", "|---|---|---|---|---|---|"]
    for name, e in entries().items():
        where = f"`{e.zone}` | `{e.dataset}`" + ("" if e.key else " (not partitioned)")
        rows.append(f"| `catalog.{name}` | {where} | {e.format} | {e.written_by} | {f'`{e.asset}`' if e.asset else '-'} |")
    return "\n".join(rows)
