"""Parse time of every DAG file, from DagBag's own stats (target: under 0.3 s each).

Each file is parsed in a fresh interpreter, as the dag-processor would see it the first time,
and the best of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout: `python bench/...`
    sys.path.insert(0, str(REPO))
PROBE = (
    "import json, sys\n"
    "from airflow.dag_processing.dagbag import DagBag\n"
    "bag = DagBag(sys.argv[1])\n"
    "print(json.dumps({'errors': len(bag.import_errors),"
    " 'stats': {s.file: s.duration.total_seconds() for s in bag.dagbag_stats}}))\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.3)
    args = parser.parse_args()
    from flywheel import config

    env = config.child_env(PYTHONPATH=str(REPO))
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "dags")], env=env,
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["errors"]:
            print(f"{result['errors']} DAG import errors: run `airflow dags list-import-errors --local`")
            return 1
        for file, seconds in result["stats"].items():
            best[file] = min(seconds, best.get(file, seconds))
    print(f"DAG parse time (DagBag stats, best of {args.repeat} fresh interpreters):")
    slow = 0
    for file, seconds in sorted(best.items()):
        flag = "ok" if seconds < args.target else f"SLOWER than {args.target}s"
        slow += seconds >= args.target
        print(f"  {Path(file).name:28} {seconds:6.3f}s  {flag}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
