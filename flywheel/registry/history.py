"""The promotion history: an append-only JSON-lines file, one line per decision or rollback.

``<lake>/monitoring/promotions/history.jsonl``. Lines are appended under the registry lock
(:mod:`flywheel.registry.lock`) and never rewritten. Each line holds:

``ts`` (wall clock, UTC, audit only), ``as_of`` (the run's logical/as-of date), ``model``,
``version``, ``decision`` (promoted | rejected | rollback), ``reason``, ``champion_before``,
``champion_after``, ``metrics`` ({"challenger": {...}, "champion": {...}}), ``checks``,
``source`` (training | retraining | rollback) and ``run`` (Airflow dag_id, run_id, task_id,
try_number, links... whatever the caller's context held).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import lake
from flywheel.registry.lock import registry_lock

if TYPE_CHECKING:
    from flywheel.config import Settings

ZONE = "monitoring"
DATASET = "promotions"
FILENAME = "history.jsonl"
SOURCES = ("training", "retraining", "rollback")
DECISIONS = ("promoted", "rejected", "rollback")


class HistoryError(RuntimeError):
    """The history file holds a line that is not a JSON object."""


def history_path(settings: Settings) -> Path:
    return lake.dataset_path(ZONE, DATASET, settings.lake) / FILENAME


def append_record(settings: Settings, record: dict[str, Any]) -> Path:
    """Append one record as one line (takes the registry lock; re-entrant if the caller holds it)."""
    if record.get("decision") not in DECISIONS:
        raise ValueError(f"history record decision {record.get('decision')!r}: expected one of {DECISIONS}")
    if record.get("source") not in SOURCES:
        raise ValueError(f"history record source {record.get('source')!r}: expected one of {SOURCES}")
    line = json.dumps(record, sort_keys=True, default=str, allow_nan=True) + "\n"
    path = history_path(settings)
    with registry_lock(settings):
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write of one line on an O_APPEND descriptor, flushed to disk before the lock is released.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def read_history(settings: Settings) -> list[dict[str, Any]]:
    """Every record, oldest first ([] before the first decision)."""
    path = history_path(settings)
    if not path.is_file():
        return []
    records: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(
                f"{path}:{number} is not JSON ({exc.msg}); the history is append-only, "
                "so fix or remove that line by hand"
            ) from exc
        if not isinstance(record, dict):
            raise HistoryError(f"{path}:{number} is not a JSON object")
        records.append(record)
    return records


def current_champion(settings: Settings) -> int | None:
    """The version the ``champion`` alias points at now, from MLflow (None before the first promotion)."""
    from flywheel.registry.client import CHAMPION, alias_version, connect

    return alias_version(connect(settings), settings.model_name, CHAMPION)
