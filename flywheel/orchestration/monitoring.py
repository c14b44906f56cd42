"""Task factories for ``flights_monitoring`` and ``flights_retraining``.

Monitoring: one run per scored day; the drift policy's decision is the run's branch
(``drift_detected`` emits the ``drift`` asset event with the evidence, ``no_drift`` emits nothing).
Retraining: started by the scheduler on ``drift`` events; the as-of date comes from the events,
never from the wall clock (asset-triggered runs have no logical date).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from flywheel.orchestration.assets import DRIFT


@task.sensor(poke_interval=10, timeout=dt.timedelta(hours=12).total_seconds(), mode="reschedule")
def wait_for_predictions(ds: str | None = None) -> PokeReturnValue:
    """The day's predictions partition is published by flights_scoring; a quarantined day fails at once."""
    from flywheel import lake, landing

    path = lake.partition_path("predictions", "flights", ds)
    if not path.is_dir() and lake.exists("quarantine", landing.DATASET, ds):
        raise AirflowFailException(
            f"ds={ds} is in quarantine ({lake.partition_path('quarantine', landing.DATASET, ds)}): it will not be "
            "scored. Fix the day, rerun flights_features and flights_scoring for it, then clear this run."
        )
    return PokeReturnValue(is_done=path.is_dir(), xcom_value={"ds": ds, "path": str(path)})


@task
def monitor(ds: str | None = None) -> dict[str, Any]:
    """Evidently report (data drift, prediction drift, quality) for the day, saved and logged; policy applied."""
    from flywheel.drift.monitor import DriftError, monitor_day

    try:
        return monitor_day(ds)
    except DriftError as exc:
        raise AirflowFailException(str(exc)) from exc


@task.branch
def decide(result: dict[str, Any]) -> str:
    """The policy's decision, as the branch the run takes (visible in the grid)."""
    return "drift_detected" if result["row"]["decision"] == "drift" else "no_drift"


@task(outlets=[DRIFT])
def drift_detected(result: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
    """Emit the ``drift`` asset event carrying the evidence; the scheduler starts flights_retraining."""
    evidence = {**result["evidence"], "report_path": result["paths"]["report"], "metrics_path": result["paths"]["metrics"]}
    outlet_events[DRIFT].extra = evidence
    print(f"drift on {evidence['ds']}: {evidence.get('reasons')}")
    return evidence


@task
def no_drift(result: dict[str, Any]) -> dict[str, Any]:
    """Nothing to do: the policy did not call drift (the reasons are in the monitoring history)."""
    row = result["row"]
    return {k: row[k] for k in ("ds", "decision", "streak", "fired", "drift_share", "roc_auc")}


@task
def read_drift_events(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
    """The evidence carried by the drift events that started this run (one or several)."""
    events: list[dict[str, Any]] = []
    for _asset, asset_events in (triggering_asset_events or {}).items():
        for event in asset_events:
            extra = dict(event.extra or {})
            if "ds" not in extra:
                raise AirflowFailException(f"a drift event without a date in its extra: {extra!r}")
            events.append(extra)
    if not events:
        raise AirflowFailException(
            "flights_retraining was started without drift events: it is started by the scheduler "
            "on the `drift` asset (to retrain by hand, trigger flights_training with an as_of date)"
        )
    return sorted(events, key=lambda e: e["ds"])


@task(multiple_outputs=True)
def guard(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Cooldown and dedupe: at most one retraining per cooldown window, never soon after a promotion."""
    from flywheel import config
    from flywheel.drift import policy
    from flywheel.registry import history

    settings = config.load()
    decision = policy.retraining_guard(events, history.read_history(settings), settings)
    result = decision.to_dict()
    latest = events[-1]
    result["evidence"] = {**latest, "events": [e["ds"] for e in events]}
    print(("retraining as of " if decision.should_retrain else "retraining skipped: ") + decision.reason)
    return result


@task.short_circuit
def should_retrain(flag: bool, reason: str) -> bool:
    """Skip the training group (with the guard's reason in this task's log) when the guard says so."""
    print(reason)
    return bool(flag)
