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
TRAINING_DAG = "flights_training"
SCORING_DAG = "flights_scoring"
DEFAULT_START = dt.date(2013, 1, 1)
DEFAULT_END = dt.date(2013, 1, 28)


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


def _paged(path: str, key: str, page: int = 100) -> list[dict[str, Any]]:
    """Every item of a paginated REST collection (the API caps a page at 100)."""
    items: list[dict[str, Any]] = []
    sep = "&" if "?" in path else "?"
    while True:
        payload = stack.api("GET", f"{path}{sep}limit={page}&offset={len(items)}")
        items += payload[key]
        if len(payload[key]) < page or len(items) >= payload.get("total_entries", 0):
            return items


def _runs(dag_id: str) -> dict[str, dict[str, Any]]:
    """The DAG's runs by logical date (YYYY-MM-DD), newest state."""
    runs = _paged(f"dags/{dag_id}/dagRuns?order_by=logical_date", "dag_runs")
    return {r["logical_date"][:10]: r for r in runs if r.get("logical_date")}


def _task_states(dag_id: str, run_ids: set[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for run_id in run_ids:
        for ti in _paged(f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances", "task_instances"):
            out.setdefault(run_id, {})[ti["task_id"]] = ti["state"] or "none"
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


def trigger(demo: Demo, dag_id: str, conf: dict[str, Any], poll: float = 5.0) -> dict[str, Any]:
    """Trigger a manual run with ``conf``, print task progress, return the finished run."""
    run = stack.api("POST", f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]
    demo.say(f"{dag_id}: triggered run {run_id} with {json.dumps(conf)}")
    last_line = ""
    while True:
        run = stack.api("GET", f"dags/{dag_id}/dagRuns/{_quote(run_id)}")
        states = _task_states(dag_id, {run_id}).get(run_id, {})
        running = sorted(t for t, st in states.items() if st in ("running", "queued"))
        done = sum(st in ("success", "skipped") for st in states.values())
        line = f"{dag_id}: {run['state']}, {done}/{len(states)} tasks done" + (f" | now {','.join(running)}" if running else "")
        if line != last_line:
            demo.say(line)
            last_line = line
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(poll)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def xcom(dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value (XCom), through the REST API."""
    entry = stack.api(
        "GET", f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}/xcomEntries/return_value?deserialize=true"
    )
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


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
    demo.results["features_failed"] = sorted(ds for ds, s in states.items() if s != "success")


def step_training(demo: Demo) -> None:
    """Train the first champion on the backfilled window through flights_training."""
    if demo.results.get("features_failed"):
        raise DemoError(f"flights_features failed for {demo.results['features_failed']}: not training on a gappy window")
    wait_for_dag(demo, TRAINING_DAG)
    window = (demo.end - demo.start).days + 1
    conf = {"as_of": demo.end.isoformat(), "window_days": window, "tuning_trials": demo.settings.tuning_trials}
    run = trigger(demo, TRAINING_DAG, conf)
    if run["state"] != "success":
        raise DemoError(f"{TRAINING_DAG} run {run['dag_run_id']} failed: see the UI or {demo.settings.airflow_home / 'logs'}")
    demo.results["trained"] = xcom(TRAINING_DAG, run["dag_run_id"], "train_and_gate.train_challenger")
    demo.results["decision"] = xcom(TRAINING_DAG, run["dag_run_id"], "train_and_gate.promote_or_reject")


def step_scoring(demo: Demo) -> None:
    """Score the backfilled days with the champion through flights_scoring."""
    wait_for_dag(demo, SCORING_DAG)
    states = backfill(demo, SCORING_DAG)
    rows = []
    for ds, state in states.items():
        row: dict[str, Any] = {"ds": ds, "run": state}
        part = lake.partition_path("predictions", "flights", ds, demo.settings.lake)
        if (part / "_manifest.json").is_file():
            m = json.loads((part / "_manifest.json").read_text())
            row.update(scored=m["rows"], model_version=m["model_version"], predicted_delayed=m["positives"])
        rows.append(row)
    demo.results["scoring"] = rows


class DemoError(RuntimeError):
    """A step of the demo could not go on; the message says why and where to look."""


def summary(demo: Demo) -> int:
    rows = demo.results.get("features", [])
    print()
    print(f"flights_features, {demo.start}..{demo.end}:")
    print(_table(rows, ["ds", "run", "landed", "landing_gate", "features", "cancelled", "diverted", "features_gate"]))
    ok = sum(r["run"] == "success" for r in rows) == len(rows)
    trained, decision = demo.results.get("trained"), demo.results.get("decision")
    if trained and decision:
        m = trained["metrics"]
        print()
        print(
            f"flights_training: {trained['model_name']} v{trained['model_version']} {decision['decision'].upper()} "
            f"({decision['reason']})"
        )
        print(
            f"  holdout {trained['holdout_days'][0]}..{trained['holdout_days'][-1]}: ROC AUC {m['roc_auc']:.3f}, "
            f"PR AUC {m['pr_auc']:.3f}, log loss {m['log_loss']:.3f}, Brier {m['brier']:.3f}, F1 {m['f1']:.3f} "
            f"(base rate {m.get('base_rate', float('nan')):.3f}); {trained['training_seconds']:.0f}s of training, "
            f"MLflow run {trained['run_id']}"
        )
    scoring = demo.results.get("scoring")
    if scoring:
        print()
        print("flights_scoring:")
        print(_table(scoring, ["ds", "run", "scored", "predicted_delayed", "model_version"]))
        ok = ok and all(r["run"] == "success" for r in scoring)
    print()
    print(f"{'Done' if ok else 'Finished with failures'} in {time.monotonic() - demo.started:.0f}s.")
    print(f"Lake:       {demo.settings.lake}  (features/, predictions/, quarantine/, monitoring/promotions/)")
    print(f"Data Docs:  {demo.settings.data_docs_dir / 'index.html'}")
    print(f"Airflow UI: http://localhost:{stack.AIRFLOW_PORT}  (the stack keeps running: make down)")
    if demo.results.get("mlflow_ui"):
        print(f"MLflow UI:  {demo.results['mlflow_ui']}")
    else:
        print(f"MLflow:     make up, then http://localhost:{stack.MLFLOW_PORT} (store: {demo.settings.mlflow_tracking_uri})")
    return 0 if ok else 1


STEPS: list[Callable[[Demo], None]] = [step_features, step_training, step_scoring]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=lake.parse_ds, default=DEFAULT_START)
    parser.add_argument("--end", type=lake.parse_ds, default=DEFAULT_END)
    args = parser.parse_args(argv)
    demo = Demo(config.load(), args.start, args.end)
    demo.say(f"starting the local stack (Airflow + Spark Connect) under {demo.settings.home}")
    stack.up(demo.settings)
    demo.results["mlflow_ui"] = f"http://localhost:{stack.MLFLOW_PORT}"
    demo.say(f"stack up: Airflow UI on http://localhost:{stack.AIRFLOW_PORT}, MLflow UI on {demo.results['mlflow_ui']}")
    try:
        for step in STEPS:
            step(demo)
    except (DemoError, stack.StackError) as exc:
        summary(demo)
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return summary(demo)


if __name__ == "__main__":
    sys.exit(main())
