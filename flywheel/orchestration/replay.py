"""The replay clock as an Airflow timetable (registered by the ``flywheel`` plugin).

The run of data day D covers ``[D, D + 1 day)``, so its logical date is D, exactly as a backfill's
run of D (``flywheel.clock.data_day`` reads the day off any run the same way). The clock only says
*when* that run may start: at its tick, ``epoch + (D - first_day) * every``. The next run is always
the day after the last scheduled or backfilled one, so a scheduler that falls behind makes the clock
lag, never skip a day: the history features of a day need every earlier day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable

from flywheel.clock import ReplayClock


def _midnight(day: dt.date) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


class ReplayTimetable(Timetable):
    """One data day per tick of wall time, from ``first_day`` at ``epoch`` through ``last_day``."""

    def __init__(self, epoch: str, every_seconds: float, first_day: str, last_day: str) -> None:
        self.clock = ReplayClock(
            dt.datetime.fromisoformat(epoch), dt.timedelta(seconds=every_seconds),
            dt.date.fromisoformat(first_day), dt.date.fromisoformat(last_day),
        )  # fmt: skip
        seconds = f"{every_seconds:g}"
        self.description = f"replay: one day every {seconds}s, {first_day}..{last_day} from {epoch}"

    @classmethod
    def of(cls, clock: ReplayClock) -> ReplayTimetable:
        return cls(clock.epoch.isoformat(), clock.every.total_seconds(), clock.first_day.isoformat(), clock.last_day.isoformat())

    @property
    def summary(self) -> str:
        return f"replay {self.clock.every.total_seconds():g}s/day"

    def serialize(self) -> dict[str, Any]:
        c = self.clock
        return {"epoch": c.epoch.isoformat(), "every_seconds": c.every.total_seconds(),
                "first_day": c.first_day.isoformat(), "last_day": c.last_day.isoformat()}  # fmt: skip

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ReplayTimetable:
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplayTimetable) and self.clock == other.clock

    def __hash__(self) -> int:
        return hash(self.clock)

    def infer_manual_data_interval(self, *, run_after: pendulum.DateTime) -> DataInterval:
        # A manual run is not on the clock: it names its days with the from_ds/to_ds Params.
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        clock = self.clock
        day = clock.first_day
        if last_automated_data_interval is not None:
            day = max(day, last_automated_data_interval.start.date() + dt.timedelta(days=1))
        if day > clock.last_day:
            return None  # the replay is over
        start = _midnight(day)
        if restriction.latest is not None and start > restriction.latest:
            return None
        return DagRunInfo(
            run_after=pendulum.instance(clock.run_time(day)), data_interval=DataInterval(start, start.add(days=1))
        )
