"""Defaults every Flywheel DAG shares."""

from __future__ import annotations

import datetime as dt

import pendulum

OWNER = "flywheel"
START_2013 = pendulum.datetime(2013, 1, 1, tz="UTC")
END_2013 = pendulum.datetime(2013, 12, 31, tz="UTC")

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
}
