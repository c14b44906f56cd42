"""Partition keys of the loop's asset events and runs: one day (``2013-01-05``) or a range of
consecutive days (``2013-01-01..2013-01-28``, what a range run of the features publishes).

``flights_features`` emits its event with the key of the days it published; the scheduler creates
the ``flights_scoring`` run for that key, whose event creates the ``flights_monitoring`` run for it,
whose ``drift`` event creates the ``flights_retraining`` run (``PartitionedAssetTimetable``).
Pure functions: no Airflow here.
"""

from __future__ import annotations

import datetime as dt

from flywheel import lake

SEPARATOR = ".."


class PartitionKeyError(ValueError):
    """A partition key that names no days."""


def key_of(days: list[str]) -> str:
    """The key of consecutive ``days``: the day, or ``first..last``."""
    first, last = min(days), max(days)
    if len(lake.days_between(first, last)) != len(set(days)):
        raise PartitionKeyError(f"not consecutive days: {sorted(days)}")
    return first if first == last else f"{first}{SEPARATOR}{last}"


def keys_of(days: list[str]) -> list[str]:
    """One key per run of consecutive days (a range run whose gate quarantined a day in the middle
    publishes two runs of days: each gets its own downstream run, and none waits for the bad day)."""
    keys: list[str] = []
    run: list[str] = []
    for day in sorted(set(days)):
        if run and lake.parse_ds(day) - lake.parse_ds(run[-1]) != dt.timedelta(days=1):
            keys.append(key_of(run))
            run = []
        run.append(day)
    return keys + ([key_of(run)] if run else [])


def days_of(key: str, max_days: int | None = None) -> list[str]:
    """The days of ``key``, in order; a malformed key (or one longer than ``max_days``) is an error."""
    first, separator, last = key.partition(SEPARATOR)
    try:
        if separator and not last:
            raise ValueError("a range without its last day")
        days = [d.isoformat() for d in lake.days_between(first, last or first)]
    except (lake.LakeError, ValueError) as exc:
        raise PartitionKeyError(
            f"partition key {key!r}: {exc}; a key is a day (YYYY-MM-DD) or a range (YYYY-MM-DD..YYYY-MM-DD)"
        ) from exc
    if max_days is not None and len(days) > max_days:
        raise PartitionKeyError(f"partition key {key!r}: {len(days)} days, more than {max_days}")
    return days
