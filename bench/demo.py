"""Time the whole story (`python -m flywheel.demo`) from an empty FLYWHEEL_HOME, after the install.

Starts from nothing but the installed .venv: a throw-away FLYWHEEL_HOME, so the stack start, the
Airflow DB creation, every backfill and the retraining are all inside the measured time. Prints the
wall time and the time of each phase (read from the demo's own progress lines). The local stack of
the run is stopped at the end. Ports 8080, 5000 and 15002 must be free.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout: `python bench/...`
    sys.path.insert(0, str(REPO))
PHASES = (
    ("stack up", re.compile(r"stack up")),
    ("features of the first window", re.compile(r"flights_features: success")),
    ("first training", re.compile(r"flights_training: success")),
    ("first drift event", re.compile(r"drift policy fired")),
    ("retraining decided", re.compile(r"retraining as of")),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the FLYWHEEL_HOME (default: deleted)")
    parser.add_argument("demo_args", nargs="*", help="passed to python -m flywheel.demo")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="flywheel-bench-demo-"))
    from flywheel import config

    env = config.child_env(FLYWHEEL_HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("SPARK_REMOTE", None)
    started = time.monotonic()
    marks: dict[str, str] = {}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flywheel.demo", *args.demo_args], env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        stamp = line[1:6] if line.startswith("[") else None
        for name, pattern in PHASES:
            if stamp and name not in marks and pattern.search(line):
                marks[name] = stamp
    code = proc.wait()
    wall = time.monotonic() - started
    subprocess.run([sys.executable, "-m", "flywheel.stack", "down"], env=env, cwd=REPO, check=False)
    if not args.keep:
        subprocess.run(["rm", "-rf", str(home)], check=False)
    print()
    print(f"bench/demo.py: exit {code}, wall time {wall:.0f}s ({wall / 60:.1f} min), {os.cpu_count()} cores")
    for name, _ in PHASES:
        print(f"  {name:34} at {marks.get(name, '-')}")
    return code


if __name__ == "__main__":
    sys.exit(main())
