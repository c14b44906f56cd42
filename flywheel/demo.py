"""``make demo``: the loop's story, run through the real Airflow scheduler, with a summary.

Each step is a function taking the shared :class:`Demo` context; later capabilities append steps
to :data:`STEPS`. The stack (Airflow + Spark Connect) is started if it is not running and left
running at the end so the UIs can be explored; ``make down`` stops it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel import config, features, lake, landing, stack

FEATURE_DAG = "flights_features"
DEFAULT_START = dt.date(2013, 1, 1)
DEFAULT_END = dt.date(2013, 1, 14)


@dataclass
class Demo:
    settings: config.Settings
    start: dt.date
    end: dt.date
    started: float = field(default_factory=time.monotonic)
    results: dict[str, Any] = field(default_factory=dict)

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {message}", flush=True)


def _runs(dag_id: str) -> dict[str, dict[str, Any]]:
    """The DAG's runs by logical date (YYYY-MM-DD), newest state."""
    payload = stack.api("GET", f"dags/{dag_id}/dagRuns?limit=1000&order_by=logical_date")
    return {r["logical_date"][:10]: r for r in payload["dag_runs"] if r.get("logical_date")}


def _task_states(dag_id: str, run_ids: set[str]) -> dict[str, dict[str, str]]:
    payload = stack.api("GET", f"dags/{dag_id}/dagRuns/~/taskInstances?limit=1000")
    out: dict[str, dict[str, str]] = {}
    for ti in payload["task_instances"]:
        if ti["dag_run_id"] in run_ids:
            out.setdefault(ti["dag_run_id"], {})[ti["task_id"]] = ti["state"] or "none"
    return out


def wait_for_dag(demo: Demo, dag_id: str, timeout: float = 300) -> None:
    """Wait until the dag-processor has parsed the DAG into the metadata DB, then unpause it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stack.api("GET", f"dags/{dag_id}")
            break
        except stack.StackError as exc:
            if time.monotonic() > deadline:
                raise stack.StackError(f"{dag_id} was not parsed within {timeout:.0f}s: {exc}") from exc
            time.sleep(2)
    stack.api("PATCH", f"dags/{dag_id}", {"is_paused": False})


def backfill(demo: Demo, dag_id: str, max_active_runs: int = 3, poll: float = 5.0) -> dict[str, str]:
    """Backfill ``demo.start..demo.end`` through the scheduler; print progress; return state per day."""
    wanted = {d.isoformat() for d in demo.days()}
    done = {ds for ds, r in _runs(dag_id).items() if ds in wanted and r["state"] == "success"}
    if done == wanted:
        demo.say(f"{dag_id}: all {len(wanted)} days already succeeded (make clean to start over)")
        return {ds: "success" for ds in sorted(wanted)}
    body = {
        "dag_id": dag_id,
        "from_date": f"{demo.start.isoformat()}T00:00:00Z",
        "to_date": f"{demo.end.isoformat()}T00:00:00Z",
        "max_active_runs": max_active_runs,
        # Days that already succeeded are kept; failed days run again.
        "reprocess_behavior": "failed",
    }
    created = stack.api("POST", "backfills", body)
    demo.say(f"{dag_id}: backfill {created['id']} created for {demo.start}..{demo.end} ({len(wanted)} days)")
    last_line = ""
    while True:
        info = stack.api("GET", f"backfills/{created['id']}")
        runs = {ds: r for ds, r in _runs(dag_id).items() if ds in wanted}
        finished = {ds: r["state"] for ds, r in runs.items() if r["state"] in ("success", "failed")}
        active = [r for r in runs.values() if r["state"] == "running"]
        current = ""
        if active:
            states = _task_states(dag_id, {r["dag_run_id"] for r in active})
            for run in active:
                running = [t for t, s in states.get(run["dag_run_id"], {}).items() if s in ("running", "queued")]
                current += f" {run['logical_date'][:10]}:{','.join(running) or 'scheduling'}"
        failed = sorted(ds for ds, s in finished.items() if s == "failed")
        line = f"{dag_id}: {len(finished)}/{len(wanted)} days finished" + (f", failed {failed}" if failed else "")
        line += f" | now{current}" if current else ""
        if line != last_line:
            demo.say(line)
            last_line = line
        if info.get("completed_at") and len(finished) == len(wanted):
            return {ds: finished[ds] for ds in sorted(finished)}
        time.sleep(poll)


def _day_row(settings: config.Settings, day: dt.date, run_state: str) -> dict[str, Any]:
    row: dict[str, Any] = {"ds": day.isoformat(), "run": run_state}
    landed = lake.partition_path("landing", landing.DATASET, day, settings.lake)
    quarantined = lake.partition_path("quarantine", landing.DATASET, day, settings.lake)
    folder = landed if landed.is_dir() else quarantined
    manifest = folder / landing.MANIFEST
    if manifest.is_file():
        row["landed"] = json.loads(manifest.read_text())["files"]["flights"].get("rows", "?")
    row["landing_gate"] = "pass" if (landed / landing.VALIDATION).is_file() else ("FAIL" if quarantined.is_dir() else "-")
    feat = lake.partition_path("features", features.DATASET, day, settings.lake)
    if feat.is_dir():
        m = features.read_manifest(feat)
        row.update(features=m["rows"], cancelled=m["excluded_cancelled"], diverted=m["excluded_diverted"])
        row["features_gate"] = "pass"
    elif lake.exists("quarantine", "features", day, settings.lake):
        row["features_gate"] = "FAIL"
    else:
        row["features_gate"] = "-"
    return row


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def step_features(demo: Demo) -> None:
    wait_for_dag(demo, FEATURE_DAG)
    states = backfill(demo, FEATURE_DAG)
    demo.results["features"] = [_day_row(demo.settings, lake.parse_ds(ds), s) for ds, s in states.items()]


def summary(demo: Demo) -> int:
    rows = demo.results.get("features", [])
    print()
    print(f"flights_features, {demo.start}..{demo.end}:")
    print(_table(rows, ["ds", "run", "landed", "landing_gate", "features", "cancelled", "diverted", "features_gate"]))
    ok = sum(r["run"] == "success" for r in rows)
    print()
    print(f"{ok}/{len(rows)} days succeeded in {time.monotonic() - demo.started:.0f}s.")
    print(f"Lake:       {demo.settings.lake}  (features in features/flights/, bad days in quarantine/)")
    print(f"Data Docs:  {demo.settings.data_docs_dir / 'index.html'}")
    print(f"Airflow UI: http://localhost:{stack.AIRFLOW_PORT}/dags/{FEATURE_DAG}  (the stack keeps running: make down)")
    return 0 if ok == len(rows) else 1


STEPS: list[Callable[[Demo], None]] = [step_features]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=lake.parse_ds, default=DEFAULT_START)
    parser.add_argument("--end", type=lake.parse_ds, default=DEFAULT_END)
    args = parser.parse_args(argv)
    demo = Demo(config.load(), args.start, args.end)
    demo.say(f"starting the local stack (Airflow + Spark Connect) under {demo.settings.home}")
    stack.up(demo.settings)
    demo.say(f"stack up: Airflow UI on http://localhost:{stack.AIRFLOW_PORT}")
    for step in STEPS:
        step(demo)
    return summary(demo)


if __name__ == "__main__":
    sys.exit(main())
