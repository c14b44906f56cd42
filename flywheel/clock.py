"""Which data day a scheduled run of a daily DAG processes.

Two clocks, one function (:func:`data_day`), used by every task:

- **Real schedules** (the default): a run covers the interval ``[D, D + 1 day)`` and starts when
  the interval has ended; it processes ``D``, the day that just ended. Backfills and scheduled runs
  alike carry ``D`` as their logical date.
- **The replay clock** (``FLYWHEEL_REPLAY_SECONDS`` > 0): the bundled 2013 data is replayed at a
  faster pace. The scheduler starts a run every ``every`` of wall time from ``epoch`` on; the run
  started at ``epoch + k * every`` processes ``first_day + k days``, up to ``last_day``.

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

    def data_day(self, logical_date: dt.datetime) -> dt.date:
        """The day the run with this logical date (its start time on the clock) processes."""
        offset = logical_date - self.epoch
        # A run starts on a tick; a logical date a little before it (clock skew, rounding) still
        # belongs to that tick, hence rounding to the nearest tick rather than flooring.
        ticks = round(offset / self.every)
        if ticks < 0:
            raise ClockError(f"run at {logical_date.isoformat()} is before the replay clock's start {self.epoch.isoformat()}")
        day = self.first_day + dt.timedelta(days=ticks)
        if day > self.last_day:
            raise ClockError(
                f"run at {logical_date.isoformat()} maps to {day}, after the last replayed day {self.last_day}: "
                "the replay is over"
            )
        return day


def data_day(logical_date: dt.datetime, replay: ReplayClock | None = None) -> dt.date:
    """The data day of a scheduled or backfill run: its logical date's UTC day on real schedules
    (the start of the interval that just ended), the replay clock's day otherwise."""
    if replay is not None:
        return replay.data_day(logical_date)
    if logical_date.tzinfo is not None:
        logical_date = logical_date.astimezone(dt.UTC)
    return logical_date.date()
