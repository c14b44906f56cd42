"""Which data day a run of a daily DAG processes, and when the replay clock runs it.

One function, :func:`data_day`, gives every task its day: a run covers the interval
``[D, D + 1 day)`` and its logical date is ``D``, whoever made it:

- **real schedules** (the default): the run starts when the interval has ended, so it processes
  the day that just ended;
- **the replay clock** (``FLYWHEEL_REPLAY_SECONDS`` > 0) plays the bundled 2013 days back faster:
  the run of day ``D`` may start at its tick, ``epoch + (D - first_day) * every`` (:meth:`ReplayClock.run_time`);
  the timetable (``flywheel.orchestration.replay``) lags when the machine is slower, never skips;
- backfills and range runs: the same days as a scheduled run of that day would get.

Pure: no Airflow, no environment; :mod:`flywheel.config` builds the clock from the settings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


class ClockError(ValueError):
    """A run's logical date maps to no data day of the clock."""


@dataclass(frozen=True)
class ReplayClock:
    epoch: dt.datetime  # wall-clock instant (UTC) of the run that processes first_day
    every: dt.timedelta  # wall time per data day
    first_day: dt.date
    last_day: dt.date

    def __post_init__(self) -> None:
        if self.epoch.tzinfo is None:
            raise ClockError(f"replay epoch {self.epoch} has no time zone: give it in UTC")
        if self.every <= dt.timedelta(0):
            raise ClockError(f"replay step {self.every} must be positive")
        if self.first_day > self.last_day:
            raise ClockError(f"replay from {self.first_day} is after its last day {self.last_day}")

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def end(self) -> dt.datetime:
        """The start of the run that processes the last day (the DAGs' end_date)."""
        return self.epoch + self.every * (self.days - 1)

    def run_time(self, day: dt.date) -> dt.datetime:
        """When the run processing ``day`` starts."""
        if not self.first_day <= day <= self.last_day:
            raise ClockError(f"{day} is outside the replayed days {self.first_day}..{self.last_day}")
        return self.epoch + self.every * (day - self.first_day).days


def data_day(logical_date: dt.datetime) -> dt.date:
    """The data day of a scheduled or backfill run (on real schedules and on the replay clock alike):
    its logical date, the start of its day-long interval, as a UTC day."""
    if logical_date.tzinfo is not None:
        logical_date = logical_date.astimezone(dt.UTC)
    return logical_date.date()
