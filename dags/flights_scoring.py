"""
# flights_scoring

Asset-driven: the scheduler creates a run whenever `flights_features` publishes features (its
`flights_features` event), for the same days: the run's **partition key** is the day (`2013-01-05`),
or `first..last` when a range run of the features published several consecutive days. So a backfill
of the features scores every day it builds, and a rerun of one day rescores that day only. Nobody
schedules or backfills this DAG; it scores every flight with the model at alias **champion**,
resolved when the task runs and recorded with every row.

```
wait_for_features -> score (asset event flights_predictions, same partition key) -> check_days
```

Writes `predictions/flights/ds=D/` atomically: the flight key, `probability`, `decision`
(probability >= the champion's `decision_threshold`), `model_name`, `model_version`,
`model_run_id` and the label when known. A rerun replaces the partition with the same rows.
With no champion yet (the first training window's features come before any model) `score` is
skipped, saying so, and nothing follows.

By hand: *Trigger* with a partition key (a day or `first..last`), or with the Params `from_ds` and
`to_ds`. A range scores all its days with one champion, resolved and loaded once; a quarantined
day is left out and the run fails at `check_days`, naming it, after the other days are scored.
"""

from __future__ import annotations

from airflow.sdk import PartitionedAssetTimetable, dag

from flywheel.orchestration import scoring as t
from flywheel.orchestration.assets import FEATURES
from flywheel.orchestration.days import range_params
from flywheel.orchestration.defaults import DEFAULT_ARGS, START_2013


@dag(
    dag_id="flights_scoring",
    schedule=PartitionedAssetTimetable(assets=FEATURES),  # one run per features event, same key
    start_date=START_2013,
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params=range_params(),
    tags=["flywheel", "scoring", "mlflow"],
)
def flights_scoring():
    t.check_scored(t.score(t.wait_for_features()))


flights_scoring()
