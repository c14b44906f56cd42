"""
# flights_monitoring

One run per day (same schedule or replay tick as `flights_scoring`), after it has written the day's predictions. With Evidently
0.7 it compares the day against the **champion's reference data** (its training window, found
through the champion's MLflow version): data drift of the model's inputs, prediction drift of the
scores, and model quality on the day's labels (`FLYWHEEL_LABEL_LAG_DAYS` for late labels).

```
wait_for_predictions -> monitor -> decide -> drift_detected (emits the `drift` asset event) | no_drift -> check_days
```

`monitor` saves `reports/monitoring/ds=D/` (HTML report + JSON metrics), logs them to MLflow, and
writes the day's row of the monitoring history (`monitoring/daily/ds=D/`). The drift policy
(`flywheel/drift/policy.py`) decides; days run in date order (`max_active_runs=1`) because the
policy counts consecutive drifting days.

A **range run** (*Trigger* with the Params `from_ds` and `to_ds`) monitors those days in date order
in one task. If the policy calls drift on any of them the run emits one `drift` event, with the
evidence of the first drift day (the day a daily schedule would have retrained on) and
`drift_days` listing all of them.
"""

from __future__ import annotations

from airflow.sdk import dag

from flywheel.orchestration import monitoring as t
from flywheel.orchestration.days import range_params
from flywheel.orchestration.defaults import DEFAULT_ARGS, daily_schedule

DAILY = daily_schedule(max_active_runs=1)  # FLYWHEEL_SCHEDULE / _START_DATE / _END_DATE, or the replay clock


@dag(
    dag_id="flights_monitoring",
    schedule=DAILY.schedule,
    start_date=DAILY.start_date,
    end_date=DAILY.end_date,
    catchup=DAILY.catchup,
    max_active_runs=DAILY.max_active_runs,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params=range_params(),
    tags=["flywheel", "monitoring", "evidently"],
)
def flights_monitoring():
    result = t.monitor(t.wait_for_predictions())
    branches = [t.drift_detected(result), t.no_drift(result)]
    t.decide(result) >> branches
    t.check_monitored(result, branches)


flights_monitoring()
