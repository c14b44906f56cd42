"""flywheel.clock: the day a scheduled run processes, on real schedules and on the replay clock
(pure logic), and the daily DAGs' timetables built from the settings."""

from __future__ import annotations

import datetime as dt

import pytest

from flywheel import config
from flywheel.clock import ClockError, ReplayClock, data_day

UTC = dt.UTC
EPOCH = dt.datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


def clock(first: dt.date = dt.date(2013, 1, 29), last: dt.date = dt.date(2013, 12, 31), seconds: float = 60) -> ReplayClock:
    return ReplayClock(EPOCH, dt.timedelta(seconds=seconds), first, last)


def test_on_real_schedules_a_run_processes_its_logical_dates_utc_day() -> None:
    assert data_day(dt.datetime(2013, 1, 5, tzinfo=UTC)) == dt.date(2013, 1, 5)
    # New York's evening of 4 January is already 5 January in UTC, the DAGs' time zone.
    new_york = dt.timezone(dt.timedelta(hours=-5))
    assert data_day(dt.datetime(2013, 1, 4, 21, 30, tzinfo=new_york)) == dt.date(2013, 1, 5)


def test_each_tick_of_the_replay_clock_is_the_next_day_across_month_ends() -> None:
    c = clock()
    assert [c.run_time(dt.date(2013, 1, 29) + dt.timedelta(days=k)) for k in range(5)] == [
        EPOCH + dt.timedelta(seconds=60 * k) for k in range(5)
    ]
    # February 2013 has 28 days: 1 March is tick 31 from 29 January.
    assert c.run_time(dt.date(2013, 3, 1)) == EPOCH + dt.timedelta(seconds=60 * 31)


def test_a_clock_started_mid_year_with_an_uneven_pace() -> None:
    c = clock(first=dt.date(2013, 6, 15), seconds=90)
    assert c.run_time(dt.date(2013, 6, 15)) == EPOCH
    assert c.run_time(dt.date(2013, 7, 1)) == EPOCH + dt.timedelta(seconds=90 * 16)


def test_the_end_of_the_data_ends_the_clock() -> None:
    c = clock(first=dt.date(2013, 12, 30))
    assert c.days == 2 and c.end == EPOCH + dt.timedelta(seconds=60) == c.run_time(dt.date(2013, 12, 31))
    with pytest.raises(ClockError, match="outside the replayed days"):
        c.run_time(dt.date(2014, 1, 1))
    with pytest.raises(ClockError, match="outside the replayed days"):
        c.run_time(dt.date(2013, 12, 29))


def _timetable(first: str = "2013-01-29", last: str = "2013-12-31", seconds: float = 60):
    from flywheel.orchestration.replay import ReplayTimetable

    return ReplayTimetable(EPOCH.isoformat(), seconds, first, last)


def _next(timetable, last_day: dt.date | None, latest: dt.datetime | None = None):
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction

    last = None
    if last_day is not None:
        start = pendulum.datetime(last_day.year, last_day.month, last_day.day, tz="UTC")
        last = DataInterval(start, start.add(days=1))
    return timetable.next_dagrun_info(
        last_automated_data_interval=last, restriction=TimeRestriction(None, latest, catchup=False)
    )


def test_the_replay_timetable_runs_each_day_at_its_tick_with_the_day_as_logical_date() -> None:
    timetable = _timetable()
    first = _next(timetable, None)
    assert (first.logical_date, first.run_after) == (dt.datetime(2013, 1, 29, tzinfo=UTC), EPOCH)
    assert data_day(first.logical_date) == dt.date(2013, 1, 29)
    after_jan_31 = _next(timetable, dt.date(2013, 1, 31))
    assert data_day(after_jan_31.logical_date) == dt.date(2013, 2, 1)
    assert after_jan_31.run_after == EPOCH + dt.timedelta(seconds=60 * 3)
    # Runs of earlier days (a backfill before the clock's start) do not move the clock back.
    assert data_day(_next(timetable, dt.date(2013, 1, 5)).logical_date) == dt.date(2013, 1, 29)


def test_a_late_scheduler_makes_the_clock_lag_not_skip() -> None:
    """Whenever the scheduler asks (hours after the ticks), the next run is the day after the last one."""
    timetable = _timetable(seconds=1)
    info = _next(timetable, dt.date(2013, 2, 10))
    assert data_day(info.logical_date) == dt.date(2013, 2, 11)
    assert info.run_after < dt.datetime.now(UTC)  # long due: it starts at once, for the next day


def test_the_replay_timetable_ends_with_the_data_and_survives_serialization() -> None:
    from flywheel.orchestration.replay import ReplayTimetable

    timetable = _timetable(first="2013-12-30")
    assert data_day(_next(timetable, dt.date(2013, 12, 30)).logical_date) == dt.date(2013, 12, 31)
    assert _next(timetable, dt.date(2013, 12, 31)) is None  # the replay is over
    assert ReplayTimetable.deserialize(timetable.serialize()) == timetable
    assert "60s" in timetable.summary and "2013-12-30..2013-12-31" in timetable.description


@pytest.mark.parametrize(
    ("epoch", "seconds", "first", "message"),
    [
        (dt.datetime(2026, 12, 2, 18, 0), 60, dt.date(2013, 1, 29), "no time zone"),
        (EPOCH, 0, dt.date(2013, 1, 29), "must be positive"),
        (EPOCH, 60, dt.date(2014, 1, 1), "after its last day"),
    ],
)
def test_a_clock_that_cannot_run_says_why(epoch: dt.datetime, seconds: float, first: dt.date, message: str) -> None:
    with pytest.raises(ClockError, match=message):
        ReplayClock(epoch, dt.timedelta(seconds=seconds), first, dt.date(2013, 12, 31))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("FLYWHEEL_SCHEDULE", "FLYWHEEL_START_DATE", "FLYWHEEL_END_DATE", "FLYWHEEL_REPLAY_SECONDS",
                 "FLYWHEEL_REPLAY_EPOCH", "FLYWHEEL_REPLAY_FROM", "FLYWHEEL_LIVE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_schedule_settings_and_their_errors(env: pytest.MonkeyPatch) -> None:
    s = config.load()
    assert (s.schedule, s.start_date, s.end_date, s.replay) == ("@daily", dt.date(2013, 1, 1), dt.date(2013, 12, 31), None)
    env.setenv("FLYWHEEL_START_DATE", "2026-11-01")
    env.setenv("FLYWHEEL_END_DATE", "none")
    assert config.load().end_date is None  # a source that keeps receiving days
    env.setenv("FLYWHEEL_END_DATE", "2026-10-01")
    with pytest.raises(config.ConfigError, match="FLYWHEEL_END_DATE=2026-10-01 is before FLYWHEEL_START_DATE"):
        config.load()
    env.delenv("FLYWHEEL_END_DATE")
    env.delenv("FLYWHEEL_START_DATE")
    env.setenv("FLYWHEEL_REPLAY_SECONDS", "30")
    with pytest.raises(config.ConfigError, match="FLYWHEEL_REPLAY_EPOCH=''.*`make live` sets it"):
        config.load()
    env.setenv("FLYWHEEL_REPLAY_EPOCH", "2026-12-02T18:00:00")
    with pytest.raises(config.ConfigError, match="no time zone"):
        config.load()
    env.setenv("FLYWHEEL_REPLAY_EPOCH", "2026-12-02T18:00:00+00:00")
    env.setenv("FLYWHEEL_REPLAY_FROM", "2013-03-01")
    replay = config.load().replay
    assert replay is not None and replay.first_day == dt.date(2013, 3, 1) and replay.every == dt.timedelta(seconds=30)
    env.setenv("FLYWHEEL_LIVE_SECONDS", "0")
    with pytest.raises(config.ConfigError, match="FLYWHEEL_LIVE_SECONDS=0.0"):
        config.load()


def test_a_real_schedule_runs_after_the_day_it_processes(env: pytest.MonkeyPatch) -> None:
    """The run that starts at midnight UTC covers the day that just ended, and that day is its logical date."""
    import pendulum
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.interval import CronDataIntervalTimetable

    from flywheel.orchestration.defaults import daily_schedule

    env.setenv("FLYWHEEL_START_DATE", "2026-11-01")
    env.setenv("FLYWHEEL_END_DATE", "none")
    daily = daily_schedule(max_active_runs=3)
    assert daily.end_date is None and daily.catchup is False and daily.max_active_runs == 3
    assert type(daily.schedule).__name__ == "CronDataIntervalTimetable"  # not a trigger timetable
    # What the scheduler does with it (Airflow's own timetable of the same expression):
    info = CronDataIntervalTimetable("@daily", "UTC").next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(daily.start_date, None, catchup=False)
    )
    assert info is not None
    assert info.run_after == info.data_interval.end == info.data_interval.start.add(days=1)
    assert data_day(info.data_interval.start) == (info.run_after - dt.timedelta(days=1)).date()
    assert info.run_after <= pendulum.now("UTC").add(days=1)  # catchup off: the latest interval, not 2026-11-01
    env.setenv("FLYWHEEL_SCHEDULE", "every day at noon")
    with pytest.raises(config.ConfigError, match="FLYWHEEL_SCHEDULE='every day at noon' is not a cron expression"):
        daily_schedule(max_active_runs=1)


def test_the_replay_clock_ticks_one_run_at_a_time(env: pytest.MonkeyPatch) -> None:
    from flywheel.orchestration.defaults import daily_schedule
    from flywheel.orchestration.replay import ReplayTimetable

    env.setenv("FLYWHEEL_REPLAY_SECONDS", "45")
    env.setenv("FLYWHEEL_REPLAY_EPOCH", EPOCH.isoformat())
    env.setenv("FLYWHEEL_REPLAY_FROM", "2013-12-01")
    daily = daily_schedule(max_active_runs=3)
    assert isinstance(daily.schedule, ReplayTimetable) and daily.schedule.clock.every == dt.timedelta(seconds=45)
    assert daily.start_date == dt.datetime(2013, 12, 1, tzinfo=UTC) and daily.end_date == dt.datetime(2013, 12, 31, tzinfo=UTC)
    assert daily.max_active_runs == 1  # a range run for earlier days never overlaps the clock's run


def test_make_live_starts_its_clock_on_the_day_after_the_first_window(env: pytest.MonkeyPatch) -> None:
    from flywheel import live

    now = dt.datetime(2026, 12, 2, 18, 0, 12, 345678, tzinfo=UTC)
    kept = live.clock_env(dt.date(2013, 1, 29), 60, now)
    assert kept == {
        "FLYWHEEL_REPLAY_SECONDS": "60",
        "FLYWHEEL_REPLAY_FROM": "2013-01-29",
        "FLYWHEEL_REPLAY_EPOCH": "2026-12-02T18:00:42+00:00",  # 30 s to restart and parse, on a whole second
    }
    for key, value in kept.items():
        env.setenv(key, value)
    replay = config.load().replay
    assert replay is not None
    assert replay.run_time(dt.date(2013, 1, 29)) == dt.datetime(2026, 12, 2, 18, 0, 42, tzinfo=UTC)
    assert replay.run_time(dt.date(2013, 2, 18)) == dt.datetime(2026, 12, 2, 18, 20, 42, tzinfo=UTC)


def test_make_live_again_resumes_after_the_last_monitored_day(env: pytest.MonkeyPatch, tmp_path) -> None:
    from flywheel import lake, live

    env.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    as_of = dt.date(2013, 1, 28)
    assert live.first_day(settings, as_of) == dt.date(2013, 1, 29)
    for day in (dt.date(2013, 1, 20), dt.date(2013, 1, 29), dt.date(2013, 1, 30)):
        lake.partition_path("monitoring", "daily", day, settings.lake).mkdir(parents=True)
    assert live.first_day(settings, as_of) == dt.date(2013, 1, 31)


def test_a_dag_on_the_replay_clock_round_trips_through_airflows_serialization(env: pytest.MonkeyPatch) -> None:
    """What the dag-processor stores and the scheduler reads back: the plugin registers the class."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    env.setenv("FLYWHEEL_REPLAY_SECONDS", "60")
    env.setenv("FLYWHEEL_REPLAY_EPOCH", EPOCH.isoformat())
    env.setenv("FLYWHEEL_REPLAY_FROM", "2013-01-29")
    path = Path(__file__).resolve().parents[2] / "dags" / "flights_features.py"
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["flights_features"]))
    assert type(dag.timetable).__name__ == "ReplayTimetable"
    assert dag.timetable.clock.first_day == dt.date(2013, 1, 29) and dag.max_active_runs == 1
