"""Champion/challenger: score both on one holdout, decide, move the ``champion`` alias, record it.

Three steps, each callable from a task or by hand:

* :func:`evaluate_challenger` loads the challenger (by version) and the current champion (alias
  resolved to a version first, so the version reported is the one scored), and scores both on
  the same holdout frame with each version's own ``decision_threshold`` tag.
* :func:`promote_or_reject` applies :func:`flywheel.registry.decision.decide` under the registry
  lock. Under the lock it re-reads the champion: if another promotion or a rollback moved it
  since the evaluation, the comparison is stale and the challenger is rejected (rerun the
  evaluation). On promotion the ``champion`` alias moves to the challenger and the ``challenger``
  alias is removed from it; a rejected version keeps ``challenger`` (it stays the latest
  candidate, for inspection, until the next training run moves the alias). Either way the
  decision is written as ``promotion.*`` tags on the challenger's version and appended to the
  promotion history.
* :func:`rollback` points ``champion`` at an earlier version, with ``rollback.*`` tags and a
  history line (``source=rollback``).

``context`` is a small dict from the caller: ``as_of`` (the run's logical/as-of date, YYYY-MM-DD;
recorded as the decision date, never the wall clock), ``source`` (training | retraining) and
anything that identifies the run (``dag_id``, ``run_id``, ``task_id``, ``try_number``, ``links``),
kept as the history record's ``run``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flywheel import config
from flywheel.registry import history
from flywheel.registry.client import (
    CHALLENGER,
    CHAMPION,
    RegistryError,
    alias_version,
    connect,
    decision_threshold,
    get_version,
    load_model,
)
from flywheel.registry.decision import Decision, decide
from flywheel.registry.lock import registry_lock

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from flywheel.config import Settings

EvaluateFn = Callable[[Any, "pd.DataFrame", float], dict[str, float]]
PROMOTION_SOURCES = ("training", "retraining")
# MLflow caps tag values; the full reason and checks are in the history anyway.
_MAX_TAG = 4000


def _vname(version: int | None) -> str:
    return f"v{version}" if version is not None else "none"


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


def _tag(client: MlflowClient, name: str, version: int, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        client.set_model_version_tag(name, str(version), key, text[:_MAX_TAG])


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
    """Decide, move the aliases, tag the version and append to the history; returns the history record."""
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
        current = alias_version(client, name, CHAMPION)
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
                settings.primary_metric,
                float(challenger_metrics.get(settings.primary_metric, math.nan)),
                None,
            )
        elif current != champion_version:
            decision = Decision(
                False,
                f"rejected: champion changed during evaluation ({_vname(champion_version)} -> {_vname(current)}); "
                "rerun the evaluation",
                [{"name": "champion_unchanged", "value": current, "threshold": champion_version, "passed": False}],
                settings.primary_metric,
                float(challenger_metrics.get(settings.primary_metric, math.nan)),
                None,
            )
        else:
            decision = decide(challenger_metrics, champion_metrics, settings)

        champion_after = current
        if decision.promote and current != challenger_version:
            client.set_registered_model_alias(name, CHAMPION, str(challenger_version))
            champion_after = challenger_version
        if decision.promote and alias_version(client, name, CHALLENGER) == challenger_version:
            client.delete_registered_model_alias(name, CHALLENGER)

        recorded_at = _now()
        primary = settings.primary_metric
        _tag(
            client,
            name,
            challenger_version,
            {
                "promotion.decision": decision.decision,
                "promotion.reason": decision.reason,
                "promotion.champion_before": _vname(current),
                "promotion.compared_with": _vname(champion_version),
                "promotion.decided_at": as_of or "none",
                "promotion.recorded_at": recorded_at,
                "promotion.source": source,
                f"promotion.{primary}": f"{decision.challenger_primary:.6f}",
                f"promotion.champion_{primary}": (
                    f"{decision.champion_primary:.6f}" if decision.champion_primary is not None else "none"
                ),
                "promotion.failed_checks": ",".join(c["name"] for c in decision.checks if not c["passed"]) or "none",
                "promotion.checks": decision.checks,
            },
        )
        record = {
            "ts": recorded_at,
            "as_of": as_of,
            "model": name,
            "version": challenger_version,
            "decision": decision.decision,
            "reason": decision.reason,
            "champion_before": current,
            "champion_after": champion_after,
            "compared_with": champion_version,
            "primary_metric": primary,
            "challenger_primary": decision.challenger_primary,
            "champion_primary": decision.champion_primary,
            "metrics": {"challenger": _floats(challenger_metrics), "champion": _floats(champion_metrics or {})},
            "checks": decision.checks,
            "source": source,
            "run": _run(context),
        }
        history.append_record(settings, record)
    return record


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
        get_version(client, name, to_version)
        before = alias_version(client, name, CHAMPION)
        if before == to_version:
            raise RegistryError(f"{name} v{to_version} is already the champion: nothing to roll back")
        client.set_registered_model_alias(name, CHAMPION, str(to_version))
        if alias_version(client, name, CHALLENGER) == to_version:
            client.delete_registered_model_alias(name, CHALLENGER)
        recorded_at = _now()
        _tag(
            client,
            name,
            to_version,
            {
                "rollback.reason": reason,
                "rollback.champion_before": _vname(before),
                "rollback.decided_at": as_of or "none",
                "rollback.recorded_at": recorded_at,
            },
        )
        if before is not None:
            _tag(client, name, before, {"rollback.demoted_to": _vname(to_version), "rollback.demoted_at": recorded_at})
        record = {
            "ts": recorded_at,
            "as_of": as_of,
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
        history.append_record(settings, record)
    return record
