"""Does the replay clock keep up? Read the scheduled runs of a running `make live` stack and report.

For every tick of the clock that produced a ``flights_features`` run: the data day, how long after
the tick the features, scoring and monitoring runs of that tick ended, and the ticks that got no
run (catchup is off: a scheduler that falls behind skips ticks). A clock keeps up when every tick
has its three runs and each tick's loop ends before the next tick.

    make live            # or FLYWHEEL_LIVE_SECONDS=30 make live
    # ... let it run ...
    .venv/bin/python bench/replay.py
"""

from __future__ import annotations

import datetime as dt
import sys

from flywheel import clock, config
from flywheel.airflow_api import AirflowAPI
from flywheel.live import LIVE_FILE

DAILY = ("flights_features", "flights_scoring", "flights_monitoring")


def _at(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def main() -> int:
    import json
    import os

    # The clock `make live` started (it keeps its settings there for tools like this one).
    kept = config.load().home / LIVE_FILE
    if not kept.is_file():
        print(f"no {kept}: start the clock with `make live` first (same FLYWHEEL_HOME)")
        return 1
    os.environ.update(json.loads(kept.read_text()))
    settings = config.load()
    api = AirflowAPI(settings)
    runs = {dag_id: [r for r in api.runs(dag_id, order_by="run_after") if r["run_type"] == "scheduled"] for dag_id in DAILY}
    if not runs["flights_features"]:
        print("no scheduled flights_features run yet: is `make live` running, and has its clock ticked?")
        return 1
    replay = settings.replay
    by_tick = {dag_id: {r["logical_date"]: r for r in rs} for dag_id, rs in runs.items()}
    print(f"{'tick (UTC)':20} {'data day':10} {'features':>9} {'scoring':>9} {'monitoring':>11}  (seconds from the tick to the run's end)")
    late, skipped, done = 0, 0, 0
    previous = None
    for tick_iso in sorted(by_tick["flights_features"]):
        tick = _at(tick_iso)
        if previous is not None:
            skipped += max(0, round((tick - previous) / replay.every) - 1)
        previous = tick
        day = clock.data_day(tick, replay)
        cells = []
        for dag_id in DAILY:
            r = by_tick[dag_id].get(tick_iso)
            end = _at(r["end_date"]) if r else None
            cells.append(f"{(end - tick).total_seconds():.0f}" if end else (r["state"] if r else "-"))
        ends = [by_tick[d].get(tick_iso, {}).get("end_date") for d in DAILY]
        if all(ends):
            done += 1
            if max(_at(e) for e in ends) - tick > replay.every:
                late += 1
        print(f"{tick:%Y-%m-%d %H:%M:%S}  {day!s:10} {cells[0]:>9} {cells[1]:>9} {cells[2]:>11}")
    per_hour = 3600 / replay.every.total_seconds()
    print(
        f"\n{done} ticks done, {skipped} ticks skipped, {late} finished after the next tick; "
        f"the clock asks for {per_hour:.0f} data days an hour" + (": this machine kept up" if not skipped and not late else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
