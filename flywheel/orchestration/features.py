"""Task factories for ``flights_features``: land -> gate -> Spark -> gate (publishes) -> asset event.

Every task is keyed on the run's days (its ``ds``, or the ``from_ds``/``to_ds`` Params of a range
run; never the wall clock), so a rerun or a backfill of a day replaces that day's partitions. The
days go from task to task in XCom with the ones that failed on the way (see ``days.py``). Task bodies import the heavy libraries (pandas,
great_expectations, pyspark) when they run, never at DAG parse time. A failed gate raises
``AirflowFailException``: bad data does not get better with a retry, so the task fails at once
with the gate's message (the day is already in quarantine/ then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from flywheel import catalog, config, partition_keys
from flywheel.orchestration import alerts
from flywheel.orchestration.assets import FEATURES
from flywheel.orchestration.days import check_days, outcome, run_days


@task(on_failure_callback=alerts.GateFailureAlert(catalog.LANDING_FLIGHTS.gate))
def land(logical_date: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Copy the run's day(s) from FLYWHEEL_SOURCE into landing/ (replacing an earlier landing of a day)."""
    from flywheel import landing

    done, failed = [], {}
    for day in run_days(logical_date, params):
        try:
            landing.land(day)
        except landing.LandingError as exc:
            where = landing.quarantine_unlandable(day, str(exc))
            failed[day] = f"{exc}\nRecorded in {where}; fix the source and rerun the day."
        else:
            done.append(day)
    return outcome("land", done, failed)


def _gate_each(task: str, upstream: dict[str, Any], gate_days: Any, skip: Any = None) -> dict[str, Any]:
    """Gate the days of ``upstream`` with ``gate_days`` (one day: the one-day gate; a range: one GX
    validation per table over all its days, see flywheel.validation.batch; one Data Docs build either
    way). A day its gate failed is a failure carried on; a day ``skip`` says is done already passes."""
    from flywheel.validation import batched_data_docs

    done = [day for day in upstream["days"] if skip is not None and skip(day)]
    todo = [day for day in upstream["days"] if day not in done]
    with batched_data_docs():
        result = gate_days(todo)
    if len(todo) > 1:
        print(
            f"{task}: {len(todo)} day(s): {len(result.batched)} cleared by batch validations, "
            f"{len(result.alone)} gated one by one, {len(result.failed)} failed"
        )
    done += list(result.passed)
    failed = {day: str(exc) for day, exc in result.failed.items()}
    return outcome(task, done, failed, upstream["failed"])


@task(on_failure_callback=alerts.landing_gate())
def validate_landing(landed: dict[str, Any]) -> dict[str, Any]:
    """GX gate on each landed day; a failed day is in quarantine/ and goes no further."""
    from flywheel.validation import validate_landing_days

    # A day not landed (e.g. quarantined by an earlier try of this task) fails with LandingError.
    return _gate_each("validate_landing", landed, validate_landing_days)


@task.sensor(poke_interval=5, timeout=6 * 3600, mode="reschedule")
def wait_for_history(checked: dict[str, Any]) -> PokeReturnValue:
    """Wait until every day of the 28-day history window has a landing-gate outcome.

    This is what lets a backfill run several days at once and still give the rows a sequential
    run gives: day D's history features are built only after D-28..D-1 are validated or
    quarantined. That outcome is final: the features gate never moves a landing (it judges the
    job's output), so only a rerun of an earlier day's landing changes D's history, and that is
    detected from the manifests' ``inputs`` (``emit_features_event`` names the stale days). For a range run the window of its first day is enough: the later days' windows
    hold only that one and the range's own days, which this run has gated. Reschedule mode: a
    waiting day holds no worker slot.
    """
    from flywheel import features, landing

    settings = config.load()
    first = checked["days"][0]
    pending = landing.pending_history(first, max(features.HISTORY_WINDOWS), settings.history_start, settings.lake)
    if pending:
        print(f"history of {first} waits for the landing gate of: {', '.join(d.isoformat() for d in pending)}")
    return PokeReturnValue(is_done=not pending, xcom_value=checked)


# queue: on the CeleryExecutor (cluster profile) the Spark tasks go to the `spark` queue; LocalExecutor ignores it.
@task(queue="spark")
def build_features_local(checked: dict[str, Any]) -> dict[str, Any]:
    """Run spark_jobs/build_features.py for the day(s) in this process (Spark Connect when SPARK_REMOTE is set)."""
    from flywheel import lake
    from spark_jobs import build_features

    manifests = build_features.run_days(
        [lake.parse_ds(d) for d in checked["days"]], output_dataset=catalog.FEATURES_CANDIDATE.dataset
    )
    keys = ("rows", "landed_rows", "excluded_cancelled", "excluded_diverted")
    return {**checked, "built": {m["ds"]: {k: m[k] for k in keys} for m in manifests}}


@task(on_failure_callback=alerts.features_gate())
def validate_features(checked: dict[str, Any]) -> dict[str, Any]:
    """GX gate on the candidate features of each day; publishes them to features/ or quarantines the day."""
    from flywheel.validation import validate_features_days

    def published_by_an_earlier_try(day: str) -> bool:  # build_features ran just before this task
        if catalog.FEATURES_CANDIDATE.exists(day):
            return False
        published = catalog.FEATURES.version(day)
        quarantined = catalog.QUARANTINE_FEATURES.version(day)
        # Versions are named by the time they were made: a published version older than the
        # quarantined candidate is an earlier build's, not this run's.
        return published is not None and (quarantined is None or published > quarantined)

    return _gate_each("validate_features", checked, validate_features_days, published_by_an_earlier_try)


@task(outlets=[FEATURES])
def emit_features_event(validated: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
    """Emit the features asset event (``extra``: first day ``ds``, every published day, paths and rows);
    a range run with quarantined days fails after it, at ``check_days``."""
    from flywheel import features

    rows, paths = {}, {}
    for day in validated["days"]:
        path = catalog.FEATURES.path(day)
        if not path.is_dir():
            raise AirflowFailException(f"features partition {path} is missing after its gate passed; rerun the day")
        rows[day], paths[day] = features.read_manifest(path)["rows"], str(path)
    first = validated["days"][0]
    extra = {"ds": first, "path": paths[first], "rows": rows[first]}
    if len(rows) > 1:
        extra.update(days=list(rows), rows=sum(rows.values()), rows_by_day=rows, path=str(Path(paths[first]).parent))
    # A rerun of a day changes the history of the days after it: name those built from its old landing.
    stale = features.stale_partitions(validated["days"], config.load().lake)
    if stale:
        extra["stale_days"] = sorted(stale)
        print(
            "WARNING: features of later days were built from an earlier landing of a day this run replaced; "
            "rebuild them (a range run from_ds..to_ds): "
            + "; ".join(f"ds={d} read {', '.join(why)}" for d, why in sorted(stale.items()))
        )
    outlet_events[FEATURES].extra = extra
    # One event per run of consecutive days, keyed by them: the scheduler creates flights_scoring's
    # run for exactly those days.
    keys = partition_keys.keys_of(list(rows))
    outlet_events[FEATURES].add_partitions(keys)
    print(f"features published for partition key(s) {', '.join(keys)}")
    return {**extra, "days": list(rows), "partition_keys": keys, "failed": validated["failed"]}


def check_published(published: Any) -> Any:
    """Fail a range run that quarantined days, after the others are published (mails the quarantine)."""
    return check_days(on_failure_callback=alerts.QuarantineAlert())(published)


def build_and_validate(history: Any) -> Any:
    """``build_features`` (the Spark step: in-process locally, a pod running the same CLI on
    Kubernetes), then ``validate_features``; returns the gate's output (days and failures)."""
    if config.load().execution == "kubernetes":
        from flywheel.orchestration.kubernetes import spark_pod

        days = "{{ ti.xcom_pull(task_ids='wait_for_history')['days'] | join(',') }}"
        pod = spark_pod(
            task_id="build_features",
            arguments=["spark_jobs/build_features.py", "--days", days, "--output-dataset", catalog.FEATURES_CANDIDATE.dataset],
        )
        gate = validate_features(history)  # a pod returns no XCom: the gate takes the sensor's
        history >> pod >> gate
        return gate
    return validate_features(build_features_local.override(task_id="build_features")(history))
