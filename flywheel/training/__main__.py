"""``python -m flywheel.training --as-of 2013-01-28 [--window-days 28] [--trials 8]``: train, print the result JSON."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from flywheel import config, lake
from flywheel.training.data import TrainingDataError


def main(argv: list[str] | None = None) -> int:
    settings = config.load()
    parser = argparse.ArgumentParser(prog="python -m flywheel.training", description=__doc__.split(":")[0])
    parser.add_argument("--as-of", required=True, type=lake.parse_ds, help="last day of the window, YYYY-MM-DD")
    parser.add_argument(
        "--window-days", type=int, default=None, help=f"days in the window (default {settings.train_window_days})"
    )
    parser.add_argument("--trials", type=int, default=None, help=f"Optuna trials (default {settings.tuning_trials})")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="extra MLflow run tag")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tags = dict(t.split("=", 1) for t in args.tag if "=" in t)

    from flywheel.training.train import train

    try:
        result = train(args.as_of, settings, window_days=args.window_days, n_trials=args.trials, tags=tags)
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
