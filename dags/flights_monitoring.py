"""
# flights_monitoring

Asset-driven: the scheduler creates a run whenever `flights_scoring` writes predictions (its
`flights_predictions` event), for the same days (the run's partition key: a day, or `first..last`).
With Evidently 0.7 it compares the day against the **champion's reference data** (its training window, found
through the champion's MLflow version): data drift of the model's inputs, prediction drift of the
scores, and model quality on the day's labels (`FLYWHEEL_LABEL_LAG_DAYS` for late labels).

```
wait_for_predictions -> monitor -> branch_on_drift -> drift_detected (emits the `drift` asset event) | no_drift -> check_days
```

`monitor` saves `reports/monitoring/ds=D/` (HTML report + JSON metrics), logs them to MLflow, and
writes the day's row of the monitoring log (`monitoring/daily/ds=D/`). The drift policy
(`flywheel/drift/policy.py`) decides. It counts consecutive drifting days, so days are monitored in
date order: one run at a time (`max_active_runs=1`), and `wait_for_predictions` holds a run while a
scored day the policy looks back on (`FLYWHEEL_DRIFT_CONSECUTIVE_DAYS - 1` days) is not monitored yet
(a backfill's days can finish in any order).

A range (a range run of the features, or *Trigger* with a partition key `first..last` or the Params
`from_ds` and `to_ds`) is monitored in date order in one task. If the policy calls drift on any of
its days the run emits one `drift` event, with the evidence of the first drift day (the day a daily
run would have retrained on) and `drift_days` listing all of them.
"""

from __future__ import annotations

from airflow.sdk import PartitionedAssetTimetable, dag

from flywheel.orchestration import monitoring as t
from flywheel.orchestration.assets import PREDICTIONS
from flywheel.orchestration.days import range_params
from flywheel.orchestration.defaults import DEFAULT_ARGS, START_2013


@dag(
    dag_id="flights_monitoring",
    schedule=PartitionedAssetTimetable(assets=PREDICTIONS),  # one run per predictions event, same key
    start_date=START_2013,
    catchup=False,
    max_active_runs=1,  # date order: the policy counts consecutive drifting days
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params=range_params(),
    tags=["flywheel", "monitoring", "evidently"],  # not a lake zone
)
def flights_monitoring():
    result = t.monitor(t.wait_for_predictions())
    branches = [t.drift_detected(result), t.no_drift(result)]
    t.branch_on_drift(result) >> branches
    t.check_monitored(result, branches)


flights_monitoring()
