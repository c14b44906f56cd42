"""Champion/challenger: score both on one holdout, decide, move the ``champion`` alias, record it.

Three steps, each callable from a task or by hand:

* :func:`evaluate_challenger` loads the challenger (by version) and the current champion (alias
  resolved to a version first, so the version reported is the one scored), and scores both on
  the same holdout frame with each version's own ``decision_threshold`` tag.
* :func:`promote_or_reject` applies :func:`flywheel.registry.decision.decide_promotion` under the registry
  lock. Under the lock it re-reads the champion: if another promotion or a rollback moved it
  since the evaluation, the comparison is stale and the challenger is rejected (rerun the
  evaluation). On promotion the ``champion`` alias moves to the challenger and the ``challenger``
  alias is removed from it; a rejected version keeps ``challenger`` (it stays the latest
  candidate, for inspection, until the next training run moves the alias). Either way the
  decision is written as ``promotion.*`` tags on the challenger's version and in the
  promotion history.
* :func:`rollback` points ``champion`` at an earlier version, with ``rollback.*`` tags and a
  history line (``source=rollback``). It is dated (``as_of``) by the caller, else by the latest
  day the loop has seen: a rollback starts a retraining cooldown like a promotion.

Each change is a journal entry (:mod:`flywheel.registry.journal`): written ahead in the history,
applied, confirmed; whoever takes the registry lock first completes what a killed process left
half-done, so the history and the aliases agree before anything new is decided.

``context`` is a small dict from the caller: ``as_of`` (the run's logical/as-of date, YYYY-MM-DD;
recorded as the decision date, never the wall clock), ``source`` (training | retraining) and
anything that identifies the run (``dag_id``, ``run_id``, ``task_id``, ``try_number``, ``links``),
kept as the history record's ``run``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flywheel import config
from flywheel.registry import history, journal
from flywheel.registry.client import (
    CHAMPION,
    RegistryError,
    alias_version,
    connect,
    decision_threshold,
    get_version,
    load_model,
)
from flywheel.registry.decision import Decision, decide_promotion
from flywheel.registry.journal import vname as _vname
from flywheel.registry.lock import registry_lock

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.config import Settings

EvaluateFn = Callable[[Any, "pd.DataFrame", float], dict[str, float]]
PROMOTION_SOURCES = ("training", "retraining")

def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _as_of(context: dict[str, Any]) -> str | None:
    raw = context.get("as_of")
    if raw is None or raw == "":
        return None
    from flywheel import lake

    return lake.parse_ds(raw).isoformat()


def _run(context: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in context.items() if k not in ("as_of", "source")}


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in metrics.items()}


def evaluate_challenger(
    challenger_version: int,
    holdout_frame: pd.DataFrame,
    settings: Settings | None = None,
    evaluate_fn: EvaluateFn | None = None,
) -> tuple[dict[str, float], dict[str, float] | None, int | None]:
    """Score the challenger and the current champion on the same holdout.

    Returns ``(challenger_metrics, champion_metrics, champion_version)``; the last two are None
    when there is no champion yet. ``evaluate_fn(model, frame, threshold) -> dict`` defaults to
    ``flywheel.training.model.evaluate``.
    """
    settings = settings or config.load()
    if evaluate_fn is None:
        from flywheel.training.model import evaluate as evaluate_fn
    client = connect(settings)
    name = settings.model_name
    mv = get_version(client, name, challenger_version)
    challenger = _floats(evaluate_fn(load_model(name, challenger_version), holdout_frame, decision_threshold(mv)))
    champion_version = alias_version(client, name, CHAMPION)
    if champion_version is None:
        return challenger, None, None
    champ_mv = get_version(client, name, champion_version)
    champion = _floats(evaluate_fn(load_model(name, champion_version), holdout_frame, decision_threshold(champ_mv)))
    return challenger, champion, champion_version


def promote_or_reject(
    challenger_version: int,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    champion_version: int | None,
    settings: Settings | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide, move the aliases, tag the version and record it in the history; returns the history record."""
    settings = settings or config.load()
    context = dict(context or {})
    source = context.get("source") or "training"
    if source not in PROMOTION_SOURCES:
        raise ValueError(f"context source {source!r}: a promotion comes from one of {PROMOTION_SOURCES}")
    if (champion_metrics is None) != (champion_version is None):
        raise ValueError(
            f"champion_metrics and champion_version go together: got metrics "
            f"{'None' if champion_metrics is None else 'present'} and version {champion_version}"
        )
    as_of = _as_of(context)
    client = connect(settings)
    name = settings.model_name
    get_version(client, name, challenger_version)  # fail early, naming the versions that exist

    with registry_lock(settings):
        journal.repair(client, settings)
        current = alias_version(client, name, CHAMPION)
        primary = settings.primary_metric
        if current == challenger_version:
            # A retry after the alias already moved: report the recorded decision, record it if missing.
            for record in reversed(history.read_history(settings)):
                if (record.get("model"), record.get("version"), record.get("decision")) == (
                    name,
                    challenger_version,
                    "promoted",
                ):
                    return record
            decision = Decision(
                True,
                f"promoted: {_vname(challenger_version)} is already the champion (alias set by an earlier attempt)",
                [],
                primary,
                float(challenger_metrics.get(primary, math.nan)),
                None,
            )
        elif current != champion_version:
            decision = Decision(
                False,
                f"rejected: champion changed during evaluation ({_vname(champion_version)} -> {_vname(current)}); "
                "rerun the evaluation",
                [{"name": "champion_unchanged", "value": current, "threshold": champion_version, "passed": False}],
                primary,
                float(challenger_metrics.get(primary, math.nan)),
                None,
            )
        else:
            decision = decide_promotion(challenger_metrics, champion_metrics, settings)

        record = {
            "ts": _now(),
            "as_of": as_of,
            "model": name,
            "version": challenger_version,
            "decision": decision.decision,
            "reason": decision.reason,
            "champion_before": current,
            "champion_after": challenger_version if decision.promote else current,
            "compared_with": champion_version,
            "primary_metric": primary,
            "challenger_primary": decision.challenger_primary,
            "champion_primary": decision.champion_primary,
            "metrics": {"challenger": _floats(challenger_metrics), "champion": _floats(champion_metrics or {})},
            "checks": decision.checks,
            "source": source,
            "run": _run(context),
        }
        return journal.commit(client, settings, record)


def rollback(
    to_version: int,
    settings: Settings | None = None,
    reason: str = "",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Point ``champion`` at ``to_version`` (which must exist and not be the champion already)."""
    settings = settings or config.load()
    context = dict(context or {})
    if not reason.strip():
        raise ValueError("a rollback needs a reason (it is recorded in the history and on the version)")
    as_of = _as_of(context)
    client = connect(settings)
    name = settings.model_name
    with registry_lock(settings):
        journal.repair(client, settings)
        get_version(client, name, to_version)
        before = alias_version(client, name, CHAMPION)
        if before == to_version:
            raise RegistryError(f"{name} v{to_version} is already the champion: nothing to roll back")
        record = {
            "ts": _now(),
            "as_of": as_of or history.latest_day(settings),
            "model": name,
            "version": to_version,
            "decision": "rollback",
            "reason": f"rollback: {reason}",
            "champion_before": before,
            "champion_after": to_version,
            "compared_with": None,
            "primary_metric": settings.primary_metric,
            "challenger_primary": None,
            "champion_primary": None,
            "metrics": {},
            "checks": [],
            "source": "rollback",
            "run": _run(context),
        }
        return journal.commit(client, settings, record)
