"""Task factories for ``flights_scoring``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from flywheel.orchestration.assets import PREDICTIONS


@task.sensor(poke_interval=10, timeout=dt.timedelta(hours=12).total_seconds(), mode="reschedule")
def wait_for_features(ds: str | None = None) -> PokeReturnValue:
    """The day's features partition is published (its gate passed); a quarantined day fails at once."""
    from flywheel import features, lake, landing

    path = lake.partition_path("features", features.DATASET, ds)
    if not path.is_dir() and lake.exists("quarantine", landing.DATASET, ds):
        raise AirflowFailException(
            f"ds={ds} is in quarantine ({lake.partition_path('quarantine', landing.DATASET, ds)}): its features "
            "will not be published. Fix the day and rerun flights_features for it, then clear this run."
        )
    return PokeReturnValue(is_done=path.is_dir(), xcom_value={"ds": ds, "path": str(path)})


@task(outlets=[PREDICTIONS])
def score(ds: str | None = None, outlet_events: Any = None) -> dict[str, Any]:
    """Score the day with the champion (resolved now) into predictions/flights/ds=D."""
    from flywheel.scoring import ScoringError, score_partition

    try:
        result = score_partition(ds)
    except ScoringError as exc:
        raise AirflowFailException(str(exc)) from exc
    extra = {k: result[k] for k in ("ds", "path", "rows", "model_version")}
    outlet_events[PREDICTIONS].extra = extra
    return result
