"""Defaults every Flywheel DAG shares, and the schedule of the daily DAGs (from the settings)."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import pendulum

from flywheel import config

OWNER = "flywheel"
START_2013 = pendulum.datetime(2013, 1, 1, tz="UTC")

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
}


class Daily(NamedTuple):
    """The schedule arguments of a daily DAG (each passed to ``@dag`` by name: explicit schedules)."""

    schedule: Any
    start_date: pendulum.DateTime
    end_date: pendulum.DateTime | None
    catchup: bool
    max_active_runs: int


def _utc(day: dt.date) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def daily_schedule(max_active_runs: int, settings: config.Settings | None = None) -> Daily:
    """``schedule``, ``start_date``, ``end_date``, ``catchup`` and ``max_active_runs`` of flights_features,
    _scoring and _monitoring.

    Real schedules: a cron data-interval timetable (``FLYWHEEL_SCHEDULE``, default ``@daily``, UTC), so
    the run that starts after midnight covers the day that just ended and carries it as its logical
    date, like a backfill's run of that day. The replay clock: the run of each day from
    ``FLYWHEEL_REPLAY_FROM`` on starts at its tick, one every ``FLYWHEEL_REPLAY_SECONDS`` from
    ``FLYWHEEL_REPLAY_EPOCH`` (:class:`flywheel.orchestration.replay.ReplayTimetable`), and its
    logical date is that day too. Catchup stays off: history is filled by backfills or range runs,
    and a scheduler that was down resumes at the current tick instead of replaying every missed one.
    On the replay clock one run at a time (``max_active_runs=1``): a range run triggered by hand for
    earlier days waits for the clock's run (and the other way round), so no day is processed by two
    runs at once; a day processed by both ends with the same rows (every write replaces the partition).
    """
    from airflow.sdk import CronDataIntervalTimetable

    settings = settings or config.load()
    if settings.replay is not None:
        clock = settings.replay
        from flywheel.orchestration.replay import ReplayTimetable

        return Daily(ReplayTimetable.of(clock), _utc(clock.first_day), _utc(clock.last_day), False, 1)
    from airflow.sdk.exceptions import AirflowTimetableInvalid
    from airflow.timetables.interval import CronDataIntervalTimetable as Check

    try:  # the SDK's timetable is only a definition: Airflow's own one says what is wrong, at parse time
        Check(settings.schedule, "UTC").validate()
    except AirflowTimetableInvalid as exc:
        raise config.ConfigError(f"FLYWHEEL_SCHEDULE={settings.schedule!r} is not a cron expression or preset: {exc}") from exc
    timetable = CronDataIntervalTimetable(settings.schedule, timezone="UTC")
    end = _utc(settings.end_date) if settings.end_date else None
    return Daily(timetable, _utc(settings.start_date), end, False, max_active_runs)
