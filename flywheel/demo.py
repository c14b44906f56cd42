"""``make demo``: the loop's story, run through the real Airflow scheduler, with a summary.

Each step is a function taking the shared :class:`~flywheel.demo_runs.Demo` context; later capabilities append steps
to :data:`STEPS`. The stack (PostgreSQL, MLflow, Spark Connect, Airflow) is started if it is not running and
left running at the end so the UIs can be explored; ``make down`` stops it. A component that exits
meanwhile fails the demo, unless it lost its database (the stack's watchdog restarts those, and the
summary counts them); every wait has a deadline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable

from flywheel import config, lake, stack
from flywheel.airflow_api import AirflowAPIError
from flywheel.demo_runs import (
    DEFAULT_AS_OF,
    DEFAULT_START,
    DEFAULT_UNTIL,
    FEATURE_DAG,
    MONITORING_DAG,
    RETRAINING_DAG,
    SCORING_DAG,
    TRAINING_DAG,
    Demo,
    DemoError,
    follow,
    range_run,
    retraining_runs,
    trigger,
    wait_for_dag,
    wait_for_retraining,
    xcom,
)
from flywheel.demo_summary import day_row, retraining_outcome, summary

# After a retraining's decision, monitor this many more days: how the new champion does.
FOLLOW_DAYS = 7


def step_features(demo: Demo) -> None:
    """The first training window's features: one range run of flights_features (one Spark job). Its
    event starts a flights_scoring run, which finds no champion yet and skips: waited for here, so
    that it cannot score the window with the champion trained next."""
    for dag_id in (FEATURE_DAG, SCORING_DAG, MONITORING_DAG, RETRAINING_DAG):
        wait_for_dag(demo, dag_id)
    states = range_run(demo, FEATURE_DAG, demo.start, demo.end)
    demo.results["first_window"] = [day_row(demo.settings, lake.parse_ds(ds), s) for ds, s in states.items()]
    follow(demo, SCORING_DAG, demo.start, demo.end)


def step_training(demo: Demo) -> None:
    """Train the first champion on the window's features through flights_training (a failed range run
    of the features has already stopped the demo: no training on a gappy window)."""
    wait_for_dag(demo, TRAINING_DAG)
    from flywheel.registry import history

    earlier = [
        r
        for r in history.read_history(demo.settings)
        if r.get("source") == "training" and r.get("as_of") == demo.end.isoformat() and r["decision"] == "promoted"
    ]
    if earlier and earlier[-1]["run"].get("dag_id") == TRAINING_DAG:
        run_id = earlier[-1]["run"]["run_id"]
        demo.say(
            f"{TRAINING_DAG}: v{earlier[-1]['version']} was already trained and promoted as of {demo.end} (run {run_id})"
        )
        demo.results["trained"] = xcom(demo, TRAINING_DAG, run_id, "train_and_gate.train_challenger")
        demo.results["decision"] = xcom(demo, TRAINING_DAG, run_id, "train_and_gate.promote_or_reject")
        return
    window = (demo.end - demo.start).days + 1
    conf = {"as_of": demo.end.isoformat(), "window_days": window, "tuning_trials": demo.settings.tuning_trials}
    run = trigger(demo, TRAINING_DAG, conf)
    if run["state"] != "success":
        raise DemoError(
            f"{TRAINING_DAG} run {run['dag_run_id']} failed: see the UI or {demo.settings.airflow_home / 'logs'}"
        )
    demo.results["trained"] = xcom(demo, TRAINING_DAG, run["dag_run_id"], "train_and_gate.train_challenger")
    demo.results["decision"] = xcom(demo, TRAINING_DAG, run["dag_run_id"], "train_and_gate.promote_or_reject")


def step_forward(demo: Demo) -> None:
    """Week by week after the first champion: one range run of flights_features per new week, as time
    would pass in production; its event makes the scheduler run flights_scoring for the week, whose
    event makes it run flights_monitoring (followed here, never triggered). Drift makes the scheduler start flights_retraining; once a
    retraining has promoted a new champion the loop follows it for FOLLOW_DAYS more days, then stops
    (a rejected challenger leaves the old champion in place and the loop goes on)."""
    from flywheel.drift.daily_log import read_monitoring_history
    from flywheel.registry import history

    day, stop_at = demo.end + dt.timedelta(days=1), demo.until
    demo.results["forward"] = {FEATURE_DAG: {}, SCORING_DAG: {}, MONITORING_DAG: {}}
    while day <= stop_at:
        end = min(day + dt.timedelta(days=demo.week - 1), stop_at)
        demo.say(f"--- week {day}..{end} ---")
        known = len(retraining_runs(demo))
        # One week at a time: the week is scored and monitored before the next week's features, so
        # which champion scored a day never depends on timing.
        states = range_run(demo, FEATURE_DAG, day, end)
        demo.results["forward"][FEATURE_DAG].update(states)
        for dag_id in (SCORING_DAG, MONITORING_DAG):
            run = follow(demo, dag_id, day, end)
            demo.results["forward"][dag_id].update(dict.fromkeys(states, run["state"]))
        monitored = read_monitoring_history(demo.settings)
        drift_days = monitored.loc[(monitored["ds"] >= day.isoformat()) & (monitored["decision"] == "drift"), "ds"]
        if len(drift_days):
            demo.say(f"drift policy fired on {', '.join(drift_days)}: the drift asset event starts {RETRAINING_DAG}")
        wait_for_retraining(demo, expect_new=bool(len(drift_days)), known=known)
        decided = [r for r in history.read_history(demo.settings) if r.get("source") == "retraining"]
        for record in decided:
            if record["as_of"] not in demo.results.setdefault("reported", set()):
                demo.results["reported"].add(record["as_of"])
                model = f"v{record['version']}" if record.get("version") is not None else "no version"
                demo.say(f"retraining as of {record['as_of']}: {model} {record['decision']} ({record.get('reason') or record.get('error')})")
        promoted = [r for r in decided if r["decision"] == "promoted"]
        if promoted:
            # The loop closed: follow the new champion for FOLLOW_DAYS days after its as-of date.
            stop_at = max(end, min(demo.until, lake.parse_ds(promoted[0]["as_of"]) + dt.timedelta(days=FOLLOW_DAYS)))
        day = end + dt.timedelta(days=1)
    demo.results["retraining"] = [retraining_outcome(demo, r) for r in retraining_runs(demo)]
    demo.results["monitoring_end"] = stop_at


STEPS: list[Callable[[Demo], None]] = [step_features, step_training, step_forward]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=lake.parse_ds, default=DEFAULT_START, help="first day of the first window")
    parser.add_argument("--as-of", type=lake.parse_ds, default=DEFAULT_AS_OF, help="the first champion's as-of date")
    parser.add_argument("--until", type=lake.parse_ds, default=DEFAULT_UNTIL, help="monitor forward at most to here")
    args = parser.parse_args(argv)
    if not args.start < args.as_of < args.until:
        parser.error("need --start < --as-of < --until")
    demo = Demo(config.load(), args.start, args.as_of, args.until)
    parts = (
        "PostgreSQL, an MLflow tracking server, a Spark master and worker behind Spark Connect, Airflow with "
        f"{demo.settings.celery_workers} Celery workers"
        if demo.settings.cluster
        else "PostgreSQL, MLflow, Spark Connect, Airflow"
    )
    demo.say(f"starting the {demo.settings.profile} stack ({parts}) under {demo.settings.home}")
    try:
        seconds = stack.up(demo.settings)
    except stack.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    demo.results["stack_seconds"] = seconds
    demo.results["components"] = stack.expected_components(demo.settings)
    demo.say(f"stack up in {seconds:.0f}s")
    for line in stack.login_banner(demo.settings).splitlines():
        demo.say(line)
    try:
        for step in STEPS:
            step(demo)
    except (DemoError, stack.StackError, AirflowAPIError) as exc:
        summary(demo)
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return summary(demo)


if __name__ == "__main__":
    sys.exit(main())
