"""Does the replay clock keep up? Read the runs of a running `make live` stack and report.

For every day the clock has run: its tick, how late its ``flights_features`` run started, and how
long after the tick the features run and the scoring and monitoring runs its events created (their
partition key: that day) ended. A clock keeps up
when every run starts within a tick of its tick (loops of consecutive days may overlap); when it
does not, the clock lags (the next day starts as soon as the one before is done), it never skips a day.

    make live            # or FLYWHEEL_LIVE_SECONDS=30 make live
    # ... let it run ...
    .venv/bin/python bench/replay.py
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, as `make bench` does

from flywheel import clock, config
from flywheel.airflow_api import AirflowAPI
from flywheel.live import LIVE_FILE

DAILY = ("flights_features", "flights_scoring", "flights_monitoring")


def _at(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _runs_by_day(api: AirflowAPI, dag_id: str) -> dict[dt.date, dict]:
    """The runs the scheduler made by itself, by data day: the clock's runs of the features (their
    logical date), the runs of scoring and monitoring the asset events created (their partition key)."""
    out = {}
    for r in api.runs(dag_id, order_by="run_after"):
        if dag_id == "flights_features" and r["run_type"] == "scheduled":
            out[clock.data_day(dt.datetime.fromisoformat(r["logical_date"]))] = r
        elif r["run_type"] == "asset_triggered" and r.get("partition_key") and ".." not in r["partition_key"]:
            out[dt.date.fromisoformat(r["partition_key"])] = r
    return out


def main() -> int:
    import json

    # The clock `make live` started (it keeps its settings there for tools like this one).
    kept = config.load().home / LIVE_FILE
    if not kept.is_file():
        print(f"no {kept}: start the clock with `make live` first (same FLYWHEEL_HOME)")
        return 1
    config.env_update(json.loads(kept.read_text()))
    settings = config.load()
    api = AirflowAPI(settings)
    by_day = {dag_id: _runs_by_day(api, dag_id) for dag_id in DAILY}
    if not by_day["flights_features"]:
        print("no scheduled flights_features run yet: is `make live` running, and has its clock ticked?")
        return 1
    replay = settings.replay
    print(f"{'data day':10} {'tick (UTC)':19} {'start lag':>9} {'features':>9} {'scoring':>8} {'monitoring':>10}"  # not a lake zone
          "  (seconds after the tick)")
    behind = done = 0
    worst = 0.0
    for day in sorted(by_day["flights_features"]):
        tick = replay.run_time(day)
        start = _at(by_day["flights_features"][day].get("start_date"))
        cells = []
        ends = []
        starts = []
        for dag_id in DAILY:
            r = by_day[dag_id].get(day)
            end = _at(r["end_date"]) if r else None
            ends.append(end)
            starts.append(_at(r.get("start_date")) if r else None)
            cells.append(f"{(end - tick).total_seconds():.0f}" if end else (r["state"] if r else "-"))
        if all(ends):
            done += 1
            worst = max(worst, (max(ends) - tick).total_seconds())
            # Behind: a run of the day could not start before the next tick (its DAG's previous run
            # still held its one slot). Loops of consecutive days may overlap: that is not lag.
            behind += any((s - tick) > replay.every for s in starts if s)
        lag = f"{(start - tick).total_seconds():.0f}" if start else "-"
        print(f"{day!s:10} {tick:%Y-%m-%d %H:%M:%S} {lag:>9} {cells[0]:>9} {cells[1]:>8} {cells[2]:>10}")
    per_hour = 3600 / replay.every.total_seconds()
    print(
        f"\n{done} days done; the slowest day's loop (features, scoring, monitoring) ended {worst:.0f}s after its "
        f"tick; on {behind} days a run started more than a tick late. The clock asks for {per_hour:.0f} data days an hour"
        + (": this machine kept up." if not behind else ": this machine fell behind (the clock lags, no day is skipped).")
    )
    return 0

if __name__ == "__main__":
    sys.exit(main())
