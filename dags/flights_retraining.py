"""
# flights_retraining

Started by the scheduler when `flights_monitoring` emits a `drift` asset event: nobody triggers
or wires it. The run's partition key is the monitored day (or range) that drifted; the as-of date
comes from the event's evidence (the drift day).

```
read_drift_events -> guard -> should_retrain -> train_and_gate (assemble -> gate -> train -> evaluate -> promote)
```

`guard` applies the cooldown (no retraining within `FLYWHEEL_RETRAIN_COOLDOWN_DAYS` of the last
promotion or rollback) and dedupe (several drift events, e.g. from a monitoring backfill, give one retraining
per cooldown window); when it says no, `should_retrain` skips the group and its log says why.
A task of the group that fails for good records the failure, with its error, in the promotion
history: a failed retraining counts for the cooldown, so later drift events do not restart it.
The training group is the same one `flights_training` uses; its decision, with the drift
evidence (date, drift share, drifted features, quality, report path), goes into the promotion history.
"""

from __future__ import annotations

from airflow.sdk import Param, PartitionedAssetTimetable, dag

from flywheel import config
from flywheel.orchestration import monitoring as m
from flywheel.orchestration import training as t
from flywheel.orchestration.assets import DRIFT
from flywheel.orchestration.defaults import DEFAULT_ARGS, START_2013

_settings = config.load()


@dag(
    dag_id="flights_retraining",
    schedule=PartitionedAssetTimetable(assets=DRIFT),  # one run per drift event, same key
    start_date=START_2013,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["flywheel", "retraining", "mlflow", "drift"],
    params={
        "window_days": Param(_settings.train_window_days, type="integer", minimum=9, maximum=365),
        "tuning_trials": Param(_settings.tuning_trials, type="integer", minimum=1, maximum=200),
    },
)
def flights_retraining():
    decision = m.guard(m.read_drift_events())
    gate = m.should_retrain(decision["should_retrain"], decision["reason"])
    train = t.train_and_gate(
        as_of=decision["as_of"],
        window_days="{{ params.window_days }}",
        n_trials="{{ params.tuning_trials }}",
        source="retraining",
        evidence=decision["evidence"],
    )
    gate >> train


flights_retraining()
