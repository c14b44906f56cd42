"""Task factories for ``flights_monitoring`` and ``flights_retraining``.

Monitoring: one run per predictions event (a day, or a range run's days: its partition key); the
drift policy's decision is the run's branch (``drift_detected`` emits the ``drift`` asset event with
the evidence, for the same partition key; ``no_drift`` emits nothing).
Retraining: started by the scheduler on a ``drift`` event; the as-of date comes from the event's
evidence, never from the wall clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from flywheel import catalog, partition_keys
from flywheel.orchestration import alerts
from flywheel.orchestration.assets import DRIFT
from flywheel.orchestration.days import check_days, outcome, poke_upstream, run_days


def unmonitored_before(days: list[str]) -> list[str]:
    """The scored days the drift policy would look back on from the first of ``days`` (its
    ``drift_consecutive_days - 1`` days before) that have no monitoring row yet: their monitoring
    run must come first, since the policy counts consecutive drifting days in date order."""
    from flywheel import config, lake

    settings = config.load()
    first = lake.parse_ds(min(days))
    before = [first - dt.timedelta(days=n) for n in range(settings.drift_consecutive_days - 1, 0, -1)]
    return [
        d.isoformat() for d in before
        if catalog.PREDICTIONS.exists(d, settings.lake)
        and not catalog.MONITORING_LOG.exists(d, settings.lake)
    ]  # fmt: skip


@task.sensor(poke_interval=10, timeout=dt.timedelta(hours=12).total_seconds(), mode="reschedule")
def wait_for_predictions(dag_run: Any = None, logical_date: Any = None, params: dict[str, Any] | None = None) -> PokeReturnValue:
    """Every day of the run (its partition key; a manual run: its Params) has its predictions
    published by flights_scoring (at once for a run their event created), and every scored day the
    drift policy looks back on is monitored already: runs created out of date order (a backfill's
    days finish in any order) are monitored in date order. A quarantined day fails a one-day run at
    once, and is left out of a range run (whose last task then fails)."""
    days = run_days(logical_date, params, dag_run.partition_key)
    earlier = unmonitored_before(days)
    if earlier:
        print(f"waiting for the monitoring of the earlier scored day(s) {', '.join(earlier)} (date order)")
        return PokeReturnValue(is_done=False)
    return poke_upstream(
        "wait_for_predictions", days, catalog.PREDICTIONS,
        "it will not be scored. Fix the day, rerun flights_features for it (its scoring follows), then clear this run.",
    )  # fmt: skip


@task
def monitor(ready: dict[str, Any]) -> dict[str, Any]:
    """Evidently report (data drift, prediction drift, quality) for each day in date order, saved and
    logged, the policy applied; returns each day's history row, the policy's evidence and the paths."""
    from flywheel.drift import DriftError
    from flywheel.drift.monitor import monitor_day

    done, failed, results = [], {}, []
    for day in ready["days"]:  # in order: the policy counts consecutive drifting days
        try:
            result = monitor_day(day)
        except DriftError as exc:
            failed[day] = str(exc)
            print(f"ds={day}: {exc}")
            continue
        done.append(day)
        results.append({k: result[k] for k in ("row", "evidence", "paths")})
    return {**outcome("monitor", done, failed, ready["failed"]), "results": results}


def _drift_days(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in result["results"] if r["row"]["decision"] == "drift"]


@task.branch
def branch_on_drift(result: dict[str, Any]) -> str:
    """The policy's decision, as the branch the run takes (visible in the grid): drift if it called
    drift on any day of the run."""
    return "drift_detected" if _drift_days(result) else "no_drift"


@task(outlets=[DRIFT], on_success_callback=alerts.DriftAlert())
def drift_detected(result: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
    """Emit the ``drift`` asset event carrying the evidence; the scheduler starts flights_retraining.

    One event per run, with the evidence of the first day the policy called drift (the day a daily
    schedule would have retrained on); ``drift_days`` lists every drift day of a range run, which
    the retraining guard's cooldown covers.
    """
    drifted = _drift_days(result)
    first = drifted[0]
    evidence = {**first["evidence"], "report_path": first["paths"]["report"], "metrics_path": first["paths"]["metrics"]}
    if len(result["days"]) > 1:
        evidence["drift_days"] = [r["row"]["ds"] for r in drifted]
    outlet_events[DRIFT].extra = evidence
    outlet_events[DRIFT].add_partitions(partition_keys.keys_of(result["days"]))  # the run's days: retraining's key
    print(f"drift on {evidence['ds']}: {evidence.get('reasons')}")
    return evidence


@task
def no_drift(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Nothing to do: the policy did not call drift (the reasons are in the monitoring history)."""
    keys = ("ds", "decision", "streak", "fired", "drift_share", "roc_auc")
    return [{k: r["row"][k] for k in keys} for r in result["results"]]


def check_monitored(result: Any, branches: list[Any]) -> Any:
    """Fail a range run with days that could not be monitored, after the branch (and its drift event)."""
    checked = check_days(on_failure_callback=alerts.QuarantineAlert())(result)
    branches >> checked
    return checked


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
    # The evidence of the event that holds the as-of day (a range run's event lists its drift days).
    holding = [e for e in events if decision.as_of in (str(e.get("ds"))[:10], *(e.get("drift_days") or []))]
    chosen = holding[-1] if holding else events[-1]
    result["evidence"] = {**chosen, "events": [e["ds"] for e in events]}
    print(("retraining as of " if decision.should_retrain else "retraining skipped: ") + decision.reason)
    return result


@task.short_circuit
def should_retrain(flag: bool, reason: str) -> bool:
    """Skip the training group (with the guard's reason in this task's log) when the guard says so."""
    print(reason)
    return bool(flag)
