"""Rerun one day of flights_features through the scheduler and check the partition's rows are identical.

Needs the local stack up (`make up` or after `make demo`) and the day already run once. Clears the
day's run through the REST API (what *Clear* in the UI does), waits for it, and compares a hash of
the partition's rows (sorted by the flight key) before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flywheel import catalog, config, features
from flywheel.airflow_api import AirflowAPI


def rows_hash(ds: str, settings: config.Settings) -> tuple[str, int]:
    import pandas as pd

    frame = catalog.FEATURES.read_frame(ds, settings.lake)
    frame = frame.sort_values(list(features.KEY_COLUMNS)).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest(), len(frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ds", default="2013-01-05")
    args = parser.parse_args()
    settings = config.load()
    before, n = rows_hash(args.ds, settings)
    api = AirflowAPI(settings)
    bound = f"{args.ds}T00:00:00Z"
    runs = api.runs("flights_features", logical_date_gte=bound, logical_date_lte=bound)
    if not runs:
        print(f"no flights_features run for {args.ds}: run the day first")
        return 1
    run_id = runs[0]["dag_run_id"]
    started = time.monotonic()
    api.clear_task_instances("flights_features", run_id)
    while True:
        time.sleep(3)
        state = api.run("flights_features", run_id)["state"]
        if state in ("success", "failed"):
            break
    after, m = rows_hash(args.ds, settings)
    print(f"{args.ds}: rerun {state} in {time.monotonic() - started:.0f}s; {n} rows before, {m} after; "
          f"rows {'IDENTICAL' if before == after else 'DIFFERENT'} (sha256 {before[:12]} -> {after[:12]})")
    return 0 if state == "success" and before == after else 1


if __name__ == "__main__":
    sys.exit(main())
