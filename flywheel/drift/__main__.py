"""``python -m flywheel.drift``: monitor one scored day, or print the monitoring history.

python -m flywheel.drift --ds 2013-02-10      monitor the day, print the result JSON
python -m flywheel.drift history [--json]     one line per monitored day
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from flywheel import config, lake

TABLE_COLUMNS = (
    "ds",
    "champion_version",
    "drift_share",
    "n_drifted",
    "prediction_drift",
    "roc_auc",
    "champion_holdout_auc",
    "signal",
    "decision",
    "streak",
    "fired",
)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _plain(value: Any) -> Any:
    """numpy/pandas scalars as Python values, missing values as None."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def format_history(rows: list[dict[str, Any]]) -> str:
    """The monitoring history as a fixed-width table, oldest first."""
    table = [TABLE_COLUMNS, *(tuple(_cell(r.get(c)) for c in TABLE_COLUMNS) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(TABLE_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.drift", description=__doc__.split("\n")[0].strip("`"))
    parser.add_argument("command", nargs="?", choices=("monitor", "history"), default="monitor")
    parser.add_argument("--ds", type=lake.parse_ds, help="the scored day to monitor, YYYY-MM-DD")
    parser.add_argument("--json", action="store_true", help="history: print JSON lines instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = config.load()

    from flywheel.drift import DriftError
    from flywheel.drift.daily_log import read_monitoring_history
    from flywheel.drift.monitor import monitor_day

    if args.command == "history":
        frame = read_monitoring_history(settings)
        rows = [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]
        if args.json:
            for row in rows:
                print(json.dumps(row, default=str, sort_keys=True))
        else:
            print(format_history(rows) if rows else "no monitored day yet")
        return 0
    if args.ds is None:
        parser.error("monitor needs --ds YYYY-MM-DD")
    try:
        result = monitor_day(args.ds, settings)
    except DriftError as exc:
        print(f"monitoring failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
