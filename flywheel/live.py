"""``make live``: the loop on the replay clock, run by the scheduler alone.

Starts the stack, gives it what a live loop needs before its first scheduled day (the first
window's features and a first champion, as ``make demo`` does), then restarts Airflow with the
replay clock on (:mod:`flywheel.clock`): from then on the scheduler itself starts a
``flights_features`` run every ``FLYWHEEL_REPLAY_SECONDS`` (default 60) for the next 2013 day;
its asset event starts that day's ``flights_scoring`` run, whose event starts its
``flights_monitoring`` run; when the drift policy fires, ``flights_retraining`` starts from the
drift event. Nobody triggers anything:
watch the Airflow UI. ``make down`` stops it; ``make up`` afterwards starts the stack without the clock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys

from flywheel import catalog, config, demo, demo_runs, lake, stack
from flywheel.airflow_api import AirflowAPIError

# The clock's settings, kept under FLYWHEEL_HOME for tools that read the running clock (bench/replay.py).
LIVE_FILE = "live.json"
DAILY_DAGS = (demo_runs.FEATURE_DAG, demo_runs.SCORING_DAG, demo_runs.MONITORING_DAG, demo_runs.RETRAINING_DAG)


def clock_env(first_day: dt.date, seconds: float, now: dt.datetime, lead: float = 30.0) -> dict[str, str]:
    """The replay settings of a clock whose first tick (``first_day``) comes ``lead`` seconds after
    ``now`` (time for the restarted scheduler to parse the DAGs), on a whole second."""
    epoch = (now + dt.timedelta(seconds=lead)).replace(microsecond=0)
    return {
        "FLYWHEEL_REPLAY_SECONDS": f"{seconds:g}",
        "FLYWHEEL_REPLAY_FROM": first_day.isoformat(),
        "FLYWHEEL_REPLAY_EPOCH": epoch.isoformat(),
    }


def first_day(settings: config.Settings, as_of: dt.date) -> dt.date:
    """The clock's first day: the day after the first window, or, when an earlier `make live` got
    further, the day after the last monitored day (the clock resumes instead of starting over)."""
    monitored = [d for d in catalog.MONITORING_LOG.list_partitions(settings.lake) if d > as_of]
    return (monitored[-1] if monitored else as_of) + dt.timedelta(days=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.live", description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=lake.parse_ds, default=demo_runs.DEFAULT_START, help="first day of the first window")
    parser.add_argument("--as-of", type=lake.parse_ds, default=demo_runs.DEFAULT_AS_OF, help="the first champion's as-of date")
    args = parser.parse_args(argv)
    settings = config.load()
    if settings.replay is not None:
        parser.error("FLYWHEEL_REPLAY_SECONDS is set already: `make live` sets the clock itself (unset it, or use make up)")
    seconds = settings.live_seconds
    run = demo_runs.Demo(settings, args.start, args.as_of)
    run.say(f"starting the {settings.profile} stack under {settings.home}")
    try:
        run.say(f"stack up in {stack.up(settings):.0f}s")
        run.results["components"] = stack.expected_components(settings)
        # What the clock's first day needs: the history window's features and a champion.
        demo.step_features(run)
        demo.step_training(run)
        first = first_day(settings, args.as_of)
        env = clock_env(first, seconds, dt.datetime.now(dt.UTC))
        config.env_update(env)
        (settings.home / LIVE_FILE).write_text(json.dumps(env, indent=1) + "\n")
        live = config.load()
        assert live.replay is not None
        run.say("restarting Airflow with the replay clock on")
        stack.restart_airflow(live)
        api = demo_runs.Demo(live, args.start, args.as_of).api
        for dag_id in DAILY_DAGS:
            api.unpause(dag_id)
    except (demo_runs.DemoError, stack.StackError, AirflowAPIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    clock = live.replay
    per_hour = math.floor(3600 / clock.every.total_seconds())
    run.say(
        f"replay clock on: one 2013 day every {clock.every.total_seconds():g}s ({per_hour} days an hour), "
        f"{clock.first_day} at {clock.epoch:%H:%M:%S} UTC, then the next day each tick until {clock.last_day}"
    )
    for line in stack.login_banner(live).splitlines():
        run.say(line)
    run.say(
        "the scheduler runs the loop by itself now: flights_features on the clock, then (asset events) "
        "flights_scoring and flights_monitoring for each day, flights_retraining when the policy calls drift. "
        "`make down` stops it."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
