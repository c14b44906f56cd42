"""
# flights_scoring

One run per day, on the same schedule (or replay clock tick) as `flights_features` (backfills work
the same way). Waits for the day's published features partition, then scores every flight with the model
at alias **champion**, resolved when the task runs and recorded with every row.

```
wait_for_features -> score (asset event flights_predictions, extra = {ds, path, rows, model_version}) -> check_days
```

Writes `predictions/flights/ds=D/` atomically: the flight key, `probability`, `decision`
(probability >= the champion's `decision_threshold`), `model_name`, `model_version`,
`model_run_id` and the label when known. A rerun replaces the partition with the same rows.

A **range run** (*Trigger* with the Params `from_ds` and `to_ds`) scores all those days with one
champion, resolved and loaded once; a quarantined day is left out and the run fails at `check_days`,
naming it, after the other days are scored.
"""

from __future__ import annotations

from airflow.sdk import dag

from flywheel.orchestration import scoring as t
from flywheel.orchestration.days import range_params
from flywheel.orchestration.defaults import DEFAULT_ARGS, daily_schedule

DAILY = daily_schedule(max_active_runs=2)  # FLYWHEEL_SCHEDULE / _START_DATE / _END_DATE, or the replay clock


@dag(
    dag_id="flights_scoring",
    schedule=DAILY.schedule,
    start_date=DAILY.start_date,
    end_date=DAILY.end_date,
    catchup=DAILY.catchup,
    max_active_runs=DAILY.max_active_runs,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params=range_params(),
    tags=["flywheel", "scoring", "mlflow"],
)
def flights_scoring():
    t.check_scored(t.score(t.wait_for_features()))


flights_scoring()
