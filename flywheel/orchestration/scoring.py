"""Task factories for ``flights_scoring``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from flywheel import catalog, partition_keys
from flywheel.orchestration import alerts
from flywheel.orchestration.assets import PREDICTIONS
from flywheel.orchestration.days import check_days, poke_upstream, run_days


@task.sensor(poke_interval=10, timeout=dt.timedelta(hours=12).total_seconds(), mode="reschedule")
def wait_for_features(dag_run: Any = None, logical_date: Any = None, params: dict[str, Any] | None = None) -> PokeReturnValue:
    """Every day of the run (its partition key; a manual run: its Params) has its features partition
    published (its gate passed): at once for a run the features event created. A quarantined day
    fails a one-day run at once, and is left out of a range run (whose last task then fails)."""
    return poke_upstream(
        "wait_for_features", run_days(logical_date, params, dag_run.partition_key), catalog.FEATURES,
        "its features will not be published. Fix the day and rerun flights_features for it, then clear this run.",
    )  # fmt: skip


@task(outlets=[PREDICTIONS])
def score(ready: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
    """Score the day(s) with the champion (resolved now, once) into predictions/flights/ds=D.

    No champion yet (the features of the first training window are built before any model exists):
    nothing to score, the task is skipped with that reason and no predictions event follows."""
    from flywheel.scoring import NoChampion, ScoringError, score_days

    try:
        results = score_days(ready["days"])
    except NoChampion as exc:
        raise AirflowSkipException(f"{exc}; nothing scored (train one with flights_training, then rerun this run)") from exc
    except ScoringError as exc:
        raise AirflowFailException(str(exc)) from exc
    extra = {k: results[0][k] for k in ("ds", "path", "rows", "model_version")}
    if len(results) > 1:
        extra.update(days=[r["ds"] for r in results], rows=sum(r["rows"] for r in results))
    outlet_events[PREDICTIONS].extra = extra
    # Keyed by the days scored (the run's own key, or a manual run's Params): monitoring follows them.
    outlet_events[PREDICTIONS].add_partitions(partition_keys.keys_of([r["ds"] for r in results]))
    done = {"days": [r["ds"] for r in results], "failed": ready["failed"]}
    return {**results[0], **done} if len(results) == 1 else {**extra, **done, "results": results}


def check_scored(scored: Any) -> Any:
    """Fail a range run that left quarantined days out, after the others are scored."""
    return check_days(on_failure_callback=alerts.QuarantineAlert())(scored)
