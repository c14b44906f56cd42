"""Task factories for ``flights_scoring``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from flywheel.orchestration import alerts
from flywheel.orchestration.assets import PREDICTIONS
from flywheel.orchestration.days import check_days, outcome, run_days


@task.sensor(poke_interval=10, timeout=dt.timedelta(hours=12).total_seconds(), mode="reschedule")
def wait_for_features(ds: str | None = None, params: dict[str, Any] | None = None) -> PokeReturnValue:
    """Every day of the run has its features partition published (its gate passed); a quarantined
    day fails a one-day run at once, and is left out of a range run (whose last task then fails)."""
    from flywheel import features, lake, landing

    ready, failed, waiting = [], {}, []
    for day in run_days(ds, params):
        if lake.exists("features", features.DATASET, day):
            ready.append(day)
        elif lake.exists("quarantine", landing.DATASET, day):
            failed[day] = (
                f"in quarantine ({lake.partition_path('quarantine', landing.DATASET, day)}): its features will not be "
                "published. Fix the day and rerun flights_features for it, then clear this run."
            )
        else:
            waiting.append(day)
    if waiting:
        print(f"waiting for the features of {', '.join(waiting)}")
        return PokeReturnValue(is_done=False)
    return PokeReturnValue(is_done=True, xcom_value=outcome("wait_for_features", ready, failed))


@task(outlets=[PREDICTIONS])
def score(ready: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
    """Score the day(s) with the champion (resolved now, once) into predictions/flights/ds=D."""
    from flywheel.scoring import ScoringError, score_days

    try:
        results = score_days(ready["days"])
    except ScoringError as exc:
        raise AirflowFailException(str(exc)) from exc
    extra = {k: results[0][k] for k in ("ds", "path", "rows", "model_version")}
    if len(results) > 1:
        extra.update(days=[r["ds"] for r in results], rows=sum(r["rows"] for r in results))
    outlet_events[PREDICTIONS].extra = extra
    done = {"days": [r["ds"] for r in results], "failed": ready["failed"]}
    return {**results[0], **done} if len(results) == 1 else {**extra, **done, "results": results}


def check_scored(scored: Any) -> Any:
    """Fail a range run that left quarantined days out, after the others are scored."""
    return check_days(on_failure_callback=alerts.QuarantineAlert())(scored)
