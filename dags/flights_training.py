"""
# flights_training

Triggered by hand (*Trigger DAG w/ config*), never scheduled. Trains a challenger for
`is_delayed` on the feature partitions of the window ending at **as_of**, scores it and the
current champion on the same holdout days, and lets the champion/challenger gate decide.

```
mode -> train_and_gate: assemble_training_set -> validate_training_set -> train_challenger -> evaluate_challenger -> promote_or_reject
     -> rollback (only when rollback_to_version is set)
```

| Param | meaning |
|---|---|
| `as_of` | last day of the training window (the last `FLYWHEEL_HOLDOUT_DAYS` days are the holdout) |
| `window_days` | days in the window (default 28) |
| `tuning_trials` | Optuna trials, each a nested MLflow run (default 8) |
| `rollback_to_version` | set to a version number to point `champion` back to it instead of training |
| `rollback_reason` | why (recorded in the promotion history); required with a rollback |

Every decision, with the numbers that decided it, is tagged on the model version in MLflow and
appended to the promotion history (`python -m flywheel.registry history`).
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from flywheel.orchestration import training as t
from flywheel.orchestration.defaults import DEFAULT_ARGS, START_2013


@dag(
    dag_id="flights_training",
    schedule=None,
    start_date=START_2013,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["flywheel", "training", "mlflow"],
    params={
        "as_of": Param("2013-01-28", type="string", format="date", description="last day of the training window"),
        "window_days": Param(28, type="integer", minimum=9, maximum=365, description="days in the window"),
        "tuning_trials": Param(8, type="integer", minimum=1, maximum=200, description="Optuna trials"),
        "rollback_to_version": Param(None, type=["null", "integer"], minimum=1, description="roll back instead"),
        "rollback_reason": Param("", type="string", description="why (required with a rollback)"),
    },
)
def flights_training():
    mode = t.choose_mode()
    train = t.train_and_gate(
        as_of="{{ params.as_of }}",
        window_days="{{ params.window_days }}",
        n_trials="{{ params.tuning_trials }}",
        source="training",
    )
    mode >> [train, t.rollback_champion()]


flights_training()
