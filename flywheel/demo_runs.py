"""Driving Airflow runs through the stack's REST API, for the demo, ``make live`` and the tests that use the
real scheduler: the :class:`Demo` context (settings, API client, progress lines), the DAG ids, and
waits with deadlines for parsed DAGs, manual and range runs, backfills, asset-triggered runs and the
retraining runs the scheduler starts from drift events. A stack component that exits meanwhile fails the wait.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flywheel import config, partition_keys, stack
from flywheel.airflow_api import AirflowAPI, AirflowAPIError

FEATURE_DAG = "flights_features"
TRAINING_DAG = "flights_training"
SCORING_DAG = "flights_scoring"
MONITORING_DAG = "flights_monitoring"
RETRAINING_DAG = "flights_retraining"

DEFAULT_START = dt.date(2013, 1, 1)
DEFAULT_AS_OF = dt.date(2013, 1, 28)
DEFAULT_UNTIL = dt.date(2013, 6, 30)


@dataclass
class Demo:
    settings: config.Settings
    start: dt.date  # first day of the first training window
    end: dt.date  # the first champion's as-of date
    until: dt.date = DEFAULT_UNTIL  # never monitor past this day
    week: int = 7  # days per forward step
    started: float = field(default_factory=time.monotonic)
    results: dict[str, Any] = field(default_factory=dict)

    def days(self, start: dt.date | None = None, end: dt.date | None = None) -> list[dt.date]:
        start, end = start or self.start, end or self.end
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

    @cached_property
    def api(self) -> AirflowAPI:
        """The stack's REST API, logged in as the generated admin."""
        return AirflowAPI(self.settings)

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {message}", flush=True)


class DemoError(RuntimeError):
    """A step of the demo could not go on; the message says why and where to look."""


def _runs(demo: Demo, dag_id: str) -> dict[str, dict[str, Any]]:
    """The DAG's runs by logical date (YYYY-MM-DD), newest state."""
    return {r["logical_date"][:10]: r for r in demo.api.runs(dag_id) if r.get("logical_date")}


def _task_states(demo: Demo, dag_id: str, run_ids: set[str]) -> dict[str, dict[str, str]]:
    return {run_id: demo.api.task_states(dag_id, run_id) for run_id in run_ids}


def wait_for_dag(demo: Demo, dag_id: str, timeout: float = 300) -> None:
    """Wait until the dag-processor has parsed the DAG into the metadata DB, then unpause it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            demo.api.dag(dag_id)
            break
        except AirflowAPIError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise DemoError(f"{dag_id} was not parsed within {timeout:.0f}s: {exc}") from exc
            time.sleep(1)
    demo.api.unpause(dag_id)


def backfill(
    demo: Demo,
    dag_id: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    max_active_runs: int = 3,
    poll: float = 5.0,
    timeout: float = 3600,
) -> dict[str, str]:
    """Backfill ``start..end`` (default: the demo's range) through the scheduler, one run per day as a
    user's backfill runs; print progress; return the state per day. (The demo itself uses range runs.)"""
    deadline = time.monotonic() + timeout
    start, end = start or demo.start, end or demo.end
    wanted = {d.isoformat() for d in demo.days(start, end)}
    done = {ds for ds, r in _runs(demo, dag_id).items() if ds in wanted and r["state"] == "success"}
    if done == wanted:
        demo.say(f"{dag_id}: all {len(wanted)} days of {start}..{end} already succeeded")
        return dict.fromkeys(sorted(wanted), "success")
    _cancel_stale_backfills(demo, dag_id)
    # Days that already succeeded are kept; failed days run again.
    created = demo.api.create_backfill(
        dag_id, f"{start.isoformat()}T00:00:00Z", f"{end.isoformat()}T00:00:00Z", max_active_runs, "failed"
    )
    demo.say(f"{dag_id}: backfill {created['id']} created for {start}..{end} ({len(wanted)} days)")
    last_line = ""
    while True:
        runs = {ds: r for ds, r in _runs(demo, dag_id).items() if ds in wanted}
        finished = {ds: r["state"] for ds, r in runs.items() if r["state"] in ("success", "failed")}
        if len(finished) == len(wanted) and demo.api.backfill(created["id"]).get("completed_at"):
            return {ds: finished[ds] for ds in sorted(wanted)}
        active = [r for r in runs.values() if r["state"] == "running"]
        current = ""
        states = _task_states(demo, dag_id, {r["dag_run_id"] for r in active})
        for run in sorted(active, key=lambda r: r["logical_date"]):
            running = [t for t, st in states.get(run["dag_run_id"], {}).items() if st in ("running", "queued")]
            if running:
                current += f" {run['logical_date'][5:10]}:{','.join(running)}"
        failed = sorted(ds for ds, st in finished.items() if st == "failed")
        line = f"{dag_id}: {len(finished)}/{len(wanted)}" + (f" (failed {failed})" if failed else "") + current
        _watch_stack(demo)
        if line != last_line:
            demo.say(line)
            last_line = line
        if time.monotonic() > deadline:
            raise DemoError(f"backfill of {dag_id} not finished after {timeout:.0f}s: {line}")
        time.sleep(poll)


def _watch_stack(demo: Demo) -> None:
    """Fail the demo (StackError, with the logs to read) if a component of the stack has exited (one
    that lost its database is waited for while the watchdog restarts it)."""
    stack.check_running(demo.settings, demo.results.get("components", []))


def _cancel_stale_backfills(demo: Demo, dag_id: str) -> None:
    """Airflow allows one active backfill per DAG: one left by an interrupted demo is cancelled
    (its finished days stay; the new backfill reruns what it had not finished)."""
    for old in demo.api.backfills_of(dag_id):
        if not old.get("completed_at"):
            demo.api.cancel_backfill(old["id"])
            demo.say(f"{dag_id}: cancelled backfill {old['id']} left by an interrupted run")


def _progress(demo: Demo, dag_id: str, run: dict[str, Any], what: str = "") -> str:
    """One progress line of a run: its state, how many tasks are done, which run now."""
    states = demo.api.task_states(dag_id, run["dag_run_id"])
    running = sorted(t for t, st in states.items() if st in ("running", "queued"))
    done = sum(st in ("success", "skipped") for st in states.values())
    return f"{dag_id}: {what}{run['state']}, {done}/{len(states)} tasks done" + (
        f" | now {','.join(running)}" if running else ""
    )


def trigger(demo: Demo, dag_id: str, conf: dict[str, Any], poll: float = 1.0, timeout: float = 1800) -> dict[str, Any]:
    """Trigger a manual run with ``conf``, print task progress, return the finished run."""
    deadline = time.monotonic() + timeout
    run = demo.api.trigger(dag_id, conf)
    run_id = run["dag_run_id"]
    demo.say(f"{dag_id}: triggered run {run_id} with {json.dumps(conf)}")
    last_line = ""
    while True:
        run = demo.api.run(dag_id, run_id)
        _watch_stack(demo)
        line = _progress(demo, dag_id, run)
        if line != last_line:
            demo.say(line)
            last_line = line
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            raise DemoError(f"{dag_id} run {run_id} not finished after {timeout:.0f}s: {line}")
        time.sleep(poll)


def range_run(demo: Demo, dag_id: str, start: dt.date, end: dt.date) -> dict[str, str]:
    """One range run of a daily DAG over ``start..end`` (its ``from_ds``/``to_ds`` Params); returns
    the state per day. A range that already succeeded (an earlier demo) is not run again."""
    conf = {"from_ds": start.isoformat(), "to_ds": end.isoformat()}
    days = [d.isoformat() for d in demo.days(start, end)]
    earlier = [r for r in demo.api.runs(dag_id, order_by="run_after") if (r.get("conf") or {}) == conf]
    if earlier and earlier[-1]["state"] == "success":
        demo.say(f"{dag_id}: {start}..{end} already done by run {earlier[-1]['dag_run_id']}")
        return dict.fromkeys(days, "success")
    run = trigger(demo, dag_id, conf)
    if run["state"] != "success":
        raise DemoError(
            f"{dag_id} run {run['dag_run_id']} for {start}..{end} failed: see its failed task's log in the UI "
            f"({demo.settings.airflow_url}) or under {demo.settings.airflow_home / 'logs'}"
        )
    return dict.fromkeys(days, "success")


def follow(demo: Demo, dag_id: str, start: dt.date, end: dt.date, timeout: float = 1800) -> dict[str, Any]:
    """The run of an asset-driven DAG for ``start..end`` that the scheduler creates from the upstream
    event (partition key ``start..end``): wait for it to appear and finish, printing its progress;
    nobody triggers it. Returns the finished run; a failed one stops the demo."""
    key = partition_keys.key_of([d.isoformat() for d in demo.days(start, end)])
    deadline = time.monotonic() + timeout
    last_line = ""
    while True:
        runs = [r for r in demo.api.runs(dag_id, order_by="run_after") if r.get("partition_key") == key]
        run = runs[-1] if runs else None
        if run is None:
            line = f"{dag_id}: waiting for the scheduler to create the run of partition {key} (from the asset event)"
        else:
            line = _progress(demo, dag_id, run, f"{run['run_type']} run of partition {key}: ")
        if line != last_line:
            demo.say(line)
            last_line = line
        if run is not None and run["state"] == "success":
            return run
        if run is not None and run["state"] == "failed":
            raise DemoError(
                f"{dag_id} run {run['dag_run_id']} of partition {key} failed: see its failed task's log in the UI "
                f"({demo.settings.airflow_url}) or under {demo.settings.airflow_home / 'logs'}"
            )
        if time.monotonic() > deadline:
            raise DemoError(f"{dag_id}: no finished run of partition {key} after {timeout:.0f}s: {line}")
        _watch_stack(demo)
        time.sleep(1)


def xcom(demo: Demo, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value (XCom), through the REST API."""
    return demo.api.xcom_value(dag_id, run_id, task_id)


def retraining_runs(demo: Demo) -> list[dict[str, Any]]:
    return demo.api.runs(RETRAINING_DAG, order_by="run_after")


def wait_for_retraining(demo: Demo, expect_new: bool, known: int, grace: float = 60, timeout: float = 1200) -> None:
    """Wait for the retraining runs the scheduler starts from drift events, until none is active."""
    deadline = time.monotonic() + timeout
    grace_end = time.monotonic() + (grace if expect_new else 0)
    last_line = ""
    while time.monotonic() < deadline:
        runs = retraining_runs(demo)
        active = [r for r in runs if r["state"] in ("queued", "running")]
        if active:
            states = _task_states(demo, RETRAINING_DAG, {r["dag_run_id"] for r in active})
            now = sorted({t for st in states.values() for t, v in st.items() if v in ("running", "queued")})
            line = f"{RETRAINING_DAG}: run started by the scheduler from the drift event | now {','.join(now) or 'scheduling'}"
            if line != last_line:
                demo.say(line)
                last_line = line
        elif len(runs) > known or time.monotonic() >= grace_end:
            return
        _watch_stack(demo)
        time.sleep(3)
    raise DemoError(f"{RETRAINING_DAG} still running after {timeout:.0f}s; see the UI")
