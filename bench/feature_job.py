"""Time the feature job per day: in a warm SparkSession, and cold via spark-submit.

Works in a throw-away FLYWHEEL_HOME: lands and validates ``--days`` real days, then builds their
features. Reports seconds per step so the README's numbers can be reproduced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--days", type=int, default=4)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    from flywheel import config

    config.env_update({"FLYWHEEL_HOME": str(home)})
    config.env_unset("SPARK_REMOTE")

    from flywheel import catalog, landing
    from flywheel.validation import validate_features, validate_landing
    from spark_jobs import build_features
    from spark_jobs.session import get_spark

    start = dt.date.fromisoformat(args.start)
    days = [start + dt.timedelta(days=i) for i in range(args.days)]
    timings: dict[str, list[float]] = {"land": [], "validate_landing": [], "build_features": [], "validate_features": []}
    t0 = time.perf_counter()
    get_spark()
    session_start = time.perf_counter() - t0
    for day in days:
        for name, fn in (
            ("land", lambda d=day: landing.land(d)),
            ("validate_landing", lambda d=day: validate_landing(d)),
            ("build_features", lambda d=day: build_features.run(d, output_dataset=catalog.FEATURES_CANDIDATE.dataset)),
            ("validate_features", lambda d=day: validate_features(d)),
        ):
            t = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - t)

    t = time.perf_counter()
    env = config.child_env(PYTHONPATH=str(REPO))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), str(REPO / "spark_jobs" / "build_features.py"),
         "--ds", days[-1].isoformat(), "--output-dataset", catalog.FEATURES_BENCH_COLD.dataset],
        env=env, check=True, capture_output=True,
    )
    cold = time.perf_counter() - t

    print(f"Feature pipeline per day, {days[0]}..{days[-1]}, in one process (first day includes warm-up):")
    print(f"  SparkSession start (local[2]): {session_start:6.2f}s")
    for name, values in timings.items():
        warm = values[1:] or values
        print(f"  {name:18} first {values[0]:6.2f}s   warm mean {sum(warm) / len(warm):6.2f}s")
    print(f"  spark-submit build_features.py, cold JVM: {cold:6.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
