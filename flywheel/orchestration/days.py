"""The days a run of a daily DAG works on, and how a run over several days reports its failures.

A scheduled run, or a backfill's run, works on the data day of its logical date (the day that just
ended on real schedules, the day of the tick on the replay clock: :func:`flywheel.clock.data_day`). A *range run* works on the days
``from_ds..to_ds`` given in its Params (trigger the DAG with them, with or without a logical
date): one run, one Spark job and one Data Docs build for many days, with exactly the rows the
day-by-day runs give. A range run does every day it can: a day that fails a gate is quarantined
as in a daily run and the other days go on; the run's last task then fails, naming those days.

Downstream of the features the loop is asset-driven (Airflow 3.3 partitioned assets): the runs of
``flights_scoring``, ``flights_monitoring`` and ``flights_retraining`` are created by the scheduler
from asset events and know their days from the run's **partition key**: one day (``2013-01-05``) or
a range of consecutive days (``2013-01-01..2013-01-28``, what a range run of the features emits, so
its downstream runs are range runs too). :mod:`flywheel.partition_keys` makes and reads them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from flywheel import catalog, clock, lake, partition_keys


class RangeParamsError(AirflowFailException):
    """The run's from_ds/to_ds Params (or its missing logical date) name no valid days: nothing ran."""


def range_params() -> dict[str, Param]:
    """The Params of a daily DAG that let one manual run cover a range of days."""
    return {
        "from_ds": Param(
            None,
            type=["null", "string"],
            format="date",
            title="From (range run)",
            description="First day of a range run, YYYY-MM-DD. Empty: the run works on its logical date only.",
        ),
        "to_ds": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Through (range run)",
            description="Last day of a range run, inclusive (default: From).",
        ),
    }


def key_days(key: str) -> list[str]:
    """The days of a run's partition key (:mod:`flywheel.partition_keys`)."""
    try:
        return partition_keys.days_of(key, MAX_RANGE_DAYS)
    except partition_keys.PartitionKeyError as exc:
        raise RangeParamsError(str(exc)) from exc


def run_days(logical_date: dt.datetime | None, params: dict[str, Any] | None, key: str | None = None) -> list[str]:
    """The days of a run: its partition ``key`` (an asset-triggered run downstream of the features),
    else ``from_ds..to_ds`` when its Params have them (a manual range run), else the data day of its
    logical date; a run with none of them is an error."""
    if key:
        return key_days(key)
    params = params or {}
    first, last = params.get("from_ds"), params.get("to_ds")
    if not first and last:
        raise RangeParamsError(f"to_ds={last} without from_ds: give the first day of the range too")
    if first:
        try:
            days = [d.isoformat() for d in lake.days_between(first, last or first)]
        except lake.LakeError as exc:
            raise RangeParamsError(f"range run from_ds={first} to_ds={last}: {exc}") from exc
        if len(days) > MAX_RANGE_DAYS:
            raise RangeParamsError(
                f"range run from_ds={first} to_ds={last}: {len(days)} days, more than {MAX_RANGE_DAYS}; "
                "split it into several runs"
            )
        return days
    if logical_date is None:
        raise RangeParamsError(
            "this run has no partition key, no logical date and no from_ds/to_ds Params: trigger it with "
            "a partition key (a day, or first..last), a logical date (one day) or from_ds and to_ds (a range)"
        )
    return [clock.data_day(logical_date).isoformat()]


def outcome(task: str, done: list[str], failed: dict[str, str], earlier: dict[str, str] | None = None) -> dict[str, Any]:
    """What a task passes on: the days that went through it, and every day that failed so far.

    Nothing went through (a one-day run whose day failed, or a range where every day did): the
    task fails with the reasons, as a daily run always has.
    """
    failed = {**(earlier or {}), **failed}
    if not done:
        raise AirflowFailException(
            f"{task}: no day left to work on.\n" + "\n".join(f"ds={d}: {why}" for d, why in sorted(failed.items()))
        )
    return {"days": sorted(done), "failed": failed}


def poke_upstream(task: str, days: list[str], upstream: catalog.Dataset, if_quarantined: str) -> PokeReturnValue:
    """A sensor's poke: done once every day has its ``upstream`` partition or is in quarantine.

    A quarantined day is a failure carried on (``if_quarantined`` says what to do about it), so a
    one-day run whose day is quarantined fails at once and a range run goes on without it.
    """
    ready, failed, waiting = [], {}, []
    for day in days:
        # The landing gate quarantines a day's data; the features gate only the job's output.
        quarantined = [q for q in catalog.QUARANTINES if q.exists(day)]
        if upstream.exists(day):
            ready.append(day)
        elif quarantined:
            failed[day] = f"in quarantine ({quarantined[0].path(day)}): {if_quarantined}"
        else:
            waiting.append(day)
    if waiting:
        print(f"waiting for {upstream.label} of {', '.join(waiting)}")
        return PokeReturnValue(is_done=False)
    return PokeReturnValue(is_done=True, xcom_value=outcome(task, ready, failed))


# A range longer than this is a typo (a year of 2013 is 365 days): refused before anything runs.
MAX_RANGE_DAYS = 731


def finish(task: str, result: dict[str, Any]) -> None:
    """The last task of a range run: fail, naming the days that did not make it, once the others are done."""
    failed = result.get("failed") or {}
    if failed:
        lines = "\n".join(f"ds={d}: {why}" for d, why in sorted(failed.items()))
        raise AirflowFailException(
            f"{task}: {len(result['days'])} day(s) done ({', '.join(result['days'])}); "
            f"{len(failed)} failed and were not done:\n{lines}"
        )


def check_days(on_failure_callback: Any = None) -> Any:
    """The last task of a daily DAG: fails the run, naming the days that did not make it.

    A separate task, so that the tasks before it succeed and emit their asset events (Airflow
    emits a task's events only when it succeeds): a range run with one quarantined day still
    publishes, scores and monitors the others, and a drift among them still starts a retraining.
    It runs after a branch too (``none_failed_min_one_success``).
    """

    @task(task_id="check_days", trigger_rule="none_failed_min_one_success", on_failure_callback=on_failure_callback)
    def _check_days(result: dict[str, Any], dag: Any = None) -> dict[str, Any]:
        finish(dag.dag_id if dag is not None else "the run", result)
        return {"days": result["days"], "failed": {}}

    return _check_days
