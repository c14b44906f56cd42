"""The promotion history: an append-only JSON-lines file, a journal of every decision, rollback and failure.

``<lake>/monitoring/promotions/history.jsonl``. Lines are appended under the registry lock
(:mod:`flywheel.registry.lock`) and never rewritten. A record holds:

``id``, ``ts`` (wall clock, UTC, audit only), ``as_of`` (the run's logical/as-of date), ``model``,
``version``, ``decision`` (promoted | rejected | rollback | failed), ``reason``, ``champion_before``,
``champion_after``, ``metrics`` ({"challenger": {...}, "champion": {...}}), ``checks``,
``source`` (training | retraining | rollback) and ``run`` (Airflow dag_id, run_id, task_id,
try_number, links... whatever the caller's context held).

A change of the registry is written ahead (:func:`begin`): the full record with ``state: pending``
goes to the file *before* the alias moves, and a line ``{"id": ..., "state": "done"}`` after the
aliases and tags are set (:func:`finish`). A process killed in between leaves a pending record,
which the next holder of the registry lock completes (:func:`flywheel.registry.journal.repair`).
:func:`read_history` returns the completed records only, in decision order; lines without a
``state`` (older files, failed retrainings) are complete records.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import catalog
from flywheel.registry.lock import registry_lock

if TYPE_CHECKING:
    from flywheel.config import Settings

FILENAME = "history.jsonl"
SOURCES = ("training", "retraining", "rollback")
DECISIONS = ("promoted", "rejected", "rollback", "failed")
PENDING, DONE, ABANDONED = "pending", "done", "abandoned"


class HistoryError(RuntimeError):
    """The history file holds a line that is not a JSON object."""


def history_path(settings: Settings) -> Path:
    return catalog.PROMOTION_HISTORY.dir(settings.lake) / FILENAME


def new_id() -> str:
    return uuid.uuid4().hex


def _append_line(settings: Settings, obj: dict[str, Any], lock: bool = True) -> Path:
    line = json.dumps(obj, sort_keys=True, default=str, allow_nan=True) + "\n"
    path = history_path(settings)
    with registry_lock(settings) if lock else contextlib.nullcontext():
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write of one line on an O_APPEND descriptor, flushed to disk before the lock is released.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def _check(record: dict[str, Any]) -> None:
    if record.get("decision") not in DECISIONS:
        raise ValueError(f"history record decision {record.get('decision')!r}: expected one of {DECISIONS}")
    if record.get("source") not in SOURCES:
        raise ValueError(f"history record source {record.get('source')!r}: expected one of {SOURCES}")


def append_record(settings: Settings, record: dict[str, Any], lock: bool = True) -> Path:
    """Append one complete record as one line (takes the registry lock, re-entrant if the caller holds it;
    ``lock=False`` for a record that changes nothing in the registry, e.g. a failure whose cause may be
    that the lock's database is down: one ``O_APPEND`` write of one line needs no lock to stay whole)."""
    _check(record)
    return _append_line(settings, {k: v for k, v in record.items() if k != "state"}, lock)


def begin(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` ahead as pending (the caller holds the registry lock); returns it with its ``id``."""
    _check(record)
    record = {**record, "id": record.get("id") or new_id()}
    _append_line(settings, {**record, "state": PENDING})
    return record


def finish(settings: Settings, record_id: str, state: str = DONE, note: str | None = None) -> None:
    """Close a pending record: ``done`` (the registry holds it) or ``abandoned`` (it never will; ``note`` says why)."""
    if state not in (DONE, ABANDONED):
        raise ValueError(f"a pending record ends {DONE} or {ABANDONED}, not {state!r}")
    _append_line(settings, {"id": record_id, "state": state, **({"note": note} if note else {})})


def _lines(settings: Settings) -> list[dict[str, Any]]:
    path = history_path(settings)
    if not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(
                f"{path}:{number} is not JSON ({exc.msg}); the history is append-only, "
                "so fix or remove that line by hand"
            ) from exc
        if not isinstance(obj, dict):
            raise HistoryError(f"{path}:{number} is not a JSON object")
        out.append(obj)
    return out


def _journal(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(records in decision order, the outcome of each pending id)."""
    lines = _lines(settings)
    outcome = {str(o["id"]): o["state"] for o in lines if o.get("state") in (DONE, ABANDONED) and "id" in o}
    records = [o for o in lines if o.get("state") in (None, PENDING) and "decision" in o]
    return records, outcome


def read_history(settings: Settings) -> list[dict[str, Any]]:
    """Every completed record, oldest first ([] before the first decision)."""
    records, outcome = _journal(settings)
    return [
        {k: v for k, v in r.items() if k != "state"}
        for r in records
        if r.get("state") is None or outcome.get(str(r.get("id"))) == DONE
    ]


def pending(settings: Settings) -> list[dict[str, Any]]:
    """Records written ahead whose change was never confirmed (a process died in between), oldest first."""
    records, outcome = _journal(settings)
    return [
        {k: v for k, v in r.items() if k != "state"}
        for r in records
        if r.get("state") == PENDING and str(r.get("id")) not in outcome
    ]


def current_champion(settings: Settings) -> int | None:
    """The version the ``champion`` alias points at now, from MLflow (None before the first promotion)."""
    from flywheel.registry.client import CHAMPION, alias_version, connect

    return alias_version(connect(settings), settings.model_name, CHAMPION)


def latest_day(settings: Settings) -> str | None:
    """The latest data day the loop has seen: its last monitored day or the latest ``as_of`` in the
    history (None before either). A rollback without a date is dated by it, so its cooldown covers
    the drift events that follow it."""
    days = [d.isoformat() for d in catalog.MONITORING_LOG.list_partitions(settings.lake)]
    days += [str(r["as_of"])[:10] for r in read_history(settings) if r.get("as_of")]
    return max(days) if days else None
