"""Registry changes as journal entries: written ahead in the history, applied to MLflow, confirmed.

A promotion, rejection or rollback is one record (:mod:`flywheel.registry.history`). Under the
registry lock, :func:`commit` writes it ahead as pending, applies it (moves ``champion``, removes
``challenger`` from a new champion, tags the versions) and marks it done. Applying is idempotent,
so a half-done change is completed by applying its record again: :func:`repair`, which every
holder of the lock runs first, rolls each pending record forward, oldest first, before deciding
anything new. A process killed after the alias moved (or before) therefore never leaves the
history and the aliases disagreeing for the next decision, and the decisions stay in the order
they were made under the lock. A record whose alias was moved by someone else in between (by
hand, outside the lock) cannot be applied any more: it is marked abandoned, with the reason.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from flywheel import faults
from flywheel.registry import history
from flywheel.registry.client import CHALLENGER, CHAMPION, alias_version

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from flywheel.config import Settings

log = logging.getLogger(__name__)
# MLflow caps tag values; the full reason and checks are in the history anyway.
_MAX_TAG = 4000
MOVES_CHAMPION = ("promoted", "rollback")


class JournalConflict(RuntimeError):
    """The champion alias is neither where a pending record found it nor where it puts it."""


def vname(version: int | None) -> str:
    return f"v{version}" if version is not None else "none"


def _tag(client: MlflowClient, name: str, version: int, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        client.set_model_version_tag(name, str(version), key, text[:_MAX_TAG])


def _num(value: Any) -> str:
    return f"{float(value):.6f}" if value is not None else "none"


def promotion_tags(record: dict[str, Any]) -> dict[str, Any]:
    """The ``promotion.*`` tags of a decision record, set on the challenger's version."""
    primary = record["primary_metric"]
    checks = record.get("checks") or []
    return {
        "promotion.decision": record["decision"],
        "promotion.reason": record["reason"],
        "promotion.champion_before": vname(record["champion_before"]),
        "promotion.compared_with": vname(record.get("compared_with")),
        "promotion.decided_at": record.get("as_of") or "none",
        "promotion.recorded_at": record["ts"],
        "promotion.source": record["source"],
        f"promotion.{primary}": _num(record.get("challenger_primary")),
        f"promotion.champion_{primary}": _num(record.get("champion_primary")),
        "promotion.failed_checks": ",".join(c["name"] for c in checks if not c["passed"]) or "none",
        "promotion.checks": checks,
    }


def apply(client: MlflowClient, settings: Settings, record: dict[str, Any]) -> None:
    """Make the registry hold ``record`` (idempotent: a second call changes nothing)."""
    name, version, decision = record["model"], int(record["version"]), record["decision"]
    before, after = record["champion_before"], record["champion_after"]
    if decision in MOVES_CHAMPION and after != before:
        current = alias_version(client, name, CHAMPION)
        if current == before:
            client.set_registered_model_alias(name, CHAMPION, str(after))
            # Killed here, the history holds the decision as pending only: repair() completes it.
            faults.failpoint("registry.promote.alias_moved" if decision == "promoted" else "registry.rollback.alias_moved")
        elif current != after:
            raise JournalConflict(
                f"{name}: the champion is {vname(current)}, neither {vname(before)} (before this {decision} of "
                f"v{version}) nor {vname(after)} (after it): it was moved outside Flywheel's registry lock"
            )
    if decision in MOVES_CHAMPION and alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    if decision == "rollback":
        _tag(
            client,
            name,
            version,
            {
                "rollback.reason": str(record["reason"]).removeprefix("rollback: "),
                "rollback.champion_before": vname(before),
                "rollback.decided_at": record.get("as_of") or "none",
                "rollback.recorded_at": record["ts"],
            },
        )
        if before is not None:
            _tag(client, name, before, {"rollback.demoted_to": vname(version), "rollback.demoted_at": record["ts"]})
    else:
        _tag(client, name, version, promotion_tags(record))


def commit(client: MlflowClient, settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` ahead, apply it, mark it done (the caller holds the registry lock); returns it."""
    record = history.begin(settings, record)
    apply(client, settings, record)
    history.finish(settings, record["id"])
    return record


def repair(client: MlflowClient, settings: Settings) -> list[dict[str, Any]]:
    """Complete every pending record, oldest first (the caller holds the registry lock); returns them."""
    done = []
    for record in history.pending(settings):
        try:
            apply(client, settings, record)
        except JournalConflict as exc:
            log.warning("abandoning the pending %s of v%s: %s", record["decision"], record["version"], exc)
            history.finish(settings, record["id"], history.ABANDONED, str(exc))
            continue
        history.finish(settings, record["id"])
        log.warning(
            "completed the %s of v%s (as of %s) that a killed process left half-done",
            record["decision"],
            record["version"],
            record.get("as_of"),
        )
        done.append(record)
    return done
