"""Task factories for ``flights_features``: land -> gate -> Spark -> gate -> publish.

Every task is keyed on the run's ``ds`` (never the wall clock), so a rerun or a backfill of a
day replaces that day's partitions. Task bodies import the heavy libraries (pandas,
great_expectations, pyspark) when they run, never at DAG parse time. A failed gate raises
``AirflowFailException``: bad data does not get better with a retry, so the task fails at once
with the gate's message (the day is already in quarantine/ then).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from flywheel import config
from flywheel.orchestration.assets import FEATURES


@task
def land(ds: str | None = None) -> dict[str, Any]:
    """Copy the day from FLYWHEEL_SOURCE into landing/ (replacing an earlier landing of that day)."""
    from flywheel import landing

    try:
        manifest = landing.land(ds)
    except landing.LandingError as exc:
        where = landing.quarantine_unlandable(ds, str(exc))
        raise AirflowFailException(f"{exc}\nRecorded in {where}; fix the source and rerun the day.") from exc
    return {"ds": manifest["ds"], "path": manifest["path"], "files": sorted(manifest["files"])}


@task
def validate_landing(ds: str | None = None) -> dict[str, Any]:
    """GX gate on the landed day; on failure the day is in quarantine/ and nothing downstream runs."""
    from flywheel.validation import GateFailed, validate_landing

    try:
        return validate_landing(ds)
    except GateFailed as exc:
        raise AirflowFailException(str(exc)) from exc


@task.sensor(poke_interval=5, timeout=6 * 3600, mode="reschedule")
def wait_for_history(ds: str | None = None) -> PokeReturnValue:
    """Wait until every day of the 28-day history window has a landing-gate outcome.

    This is what lets a backfill run several days at once and still give the rows a sequential
    run gives: day D's history features are built only after D-28..D-1 are validated or
    quarantined. Reschedule mode: a waiting day holds no worker slot.
    """
    from flywheel import features, landing

    settings = config.load()
    pending = landing.pending_history(ds, max(features.HISTORY_WINDOWS), settings.history_start, settings.lake)
    if pending:
        print(f"history of {ds} waits for the landing gate of: {', '.join(d.isoformat() for d in pending)}")
    return PokeReturnValue(is_done=not pending, xcom_value={"ds": ds, "pending": []})


@task
def build_features_local(ds: str | None = None) -> dict[str, Any]:
    """Run spark_jobs/build_features.py in this process (Spark Connect when SPARK_REMOTE is set)."""
    from flywheel import features
    from spark_jobs import build_features

    manifest = build_features.run(ds, output_dataset=features.CANDIDATE_DATASET)
    return {k: manifest[k] for k in ("ds", "rows", "landed_rows", "excluded_cancelled", "excluded_diverted")}


@task
def validate_features(ds: str | None = None) -> dict[str, Any]:
    """GX gate on the candidate features; publishes them to features/ or quarantines the day."""
    from flywheel.validation import GateFailed, validate_features

    try:
        return validate_features(ds)
    except GateFailed as exc:
        raise AirflowFailException(str(exc)) from exc


@task(outlets=[FEATURES])
def publish(ds: str | None = None, outlet_events: Any = None) -> dict[str, Any]:
    """Emit the features asset event carrying the partition's date, path and row count."""
    from flywheel import features, lake

    path = lake.partition_path("features", features.DATASET, ds)
    if not path.is_dir():
        raise AirflowFailException(f"features partition {path} is missing after its gate passed; rerun the day")
    manifest = features.read_manifest(path)
    extra = {"ds": ds, "path": str(path), "rows": manifest["rows"]}
    outlet_events[FEATURES].extra = extra
    return extra


def build_features() -> Any:
    """The Spark step: in-process locally, a pod running the same CLI on Kubernetes."""
    if config.load().execution == "kubernetes":
        from flywheel.orchestration.kubernetes import spark_pod

        return spark_pod(
            task_id="build_features",
            arguments=["spark_jobs/build_features.py", "--ds", "{{ ds }}", "--output-dataset", "flights_candidate"],
        )
    return build_features_local.override(task_id="build_features")()
