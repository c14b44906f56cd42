"""``make demo``: the loop's story, run through the real Airflow scheduler, with a summary.

Each step is a function taking the shared :class:`Demo` context; later capabilities append steps
to :data:`STEPS`. The stack (PostgreSQL, MLflow, Spark Connect, Airflow) is started if it is not running and
left running at the end so the UIs can be explored; ``make down`` stops it. A component that exits
meanwhile fails the demo, unless it lost its database (the stack's watchdog restarts those, and the
summary counts them); every wait has a deadline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flywheel import config, features, lake, landing, partition_keys, stack
from flywheel.airflow_api import AirflowAPI, AirflowAPIError

FEATURE_DAG = "flights_features"
TRAINING_DAG = "flights_training"
SCORING_DAG = "flights_scoring"
MONITORING_DAG = "flights_monitoring"
RETRAINING_DAG = "flights_retraining"
DEFAULT_START = dt.date(2013, 1, 1)
DEFAULT_AS_OF = dt.date(2013, 1, 28)
DEFAULT_UNTIL = dt.date(2013, 6, 30)
# After a retraining's decision, monitor this many more days: how the new champion does.
FOLLOW_DAYS = 7


@dataclass
class Demo:
    settings: config.Settings
    start: dt.date  # first day of the first training window
    end: dt.date  # the first champion's as-of date
    until: dt.date = DEFAULT_UNTIL  # never monitor past this day
    week: int = 7  # days per forward step
    started: float = field(default_factory=time.monotonic)
    results: dict[str, Any] = field(default_factory=dict)

    def days(self, start: dt.date | None = None, end: dt.date | None = None) -> list[dt.date]:
        start, end = start or self.start, end or self.end
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

    @cached_property
    def api(self) -> AirflowAPI:
        """The stack's REST API, logged in as the generated admin."""
        return AirflowAPI(self.settings)

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {message}", flush=True)


def _runs(demo: Demo, dag_id: str) -> dict[str, dict[str, Any]]:
    """The DAG's runs by logical date (YYYY-MM-DD), newest state."""
    return {r["logical_date"][:10]: r for r in demo.api.runs(dag_id) if r.get("logical_date")}


def _task_states(demo: Demo, dag_id: str, run_ids: set[str]) -> dict[str, dict[str, str]]:
    return {run_id: demo.api.task_states(dag_id, run_id) for run_id in run_ids}


def wait_for_dag(demo: Demo, dag_id: str, timeout: float = 300) -> None:
    """Wait until the dag-processor has parsed the DAG into the metadata DB, then unpause it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            demo.api.dag(dag_id)
            break
        except AirflowAPIError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise DemoError(f"{dag_id} was not parsed within {timeout:.0f}s: {exc}") from exc
            time.sleep(1)
    demo.api.unpause(dag_id)


def backfill(
    demo: Demo,
    dag_id: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    max_active_runs: int = 3,
    poll: float = 5.0,
    timeout: float = 3600,
) -> dict[str, str]:
    """Backfill ``start..end`` (default: the demo's range) through the scheduler, one run per day as a
    user's backfill runs; print progress; return the state per day. (The demo itself uses range runs.)"""
    deadline = time.monotonic() + timeout
    start, end = start or demo.start, end or demo.end
    wanted = {d.isoformat() for d in demo.days(start, end)}
    done = {ds for ds, r in _runs(demo, dag_id).items() if ds in wanted and r["state"] == "success"}
    if done == wanted:
        demo.say(f"{dag_id}: all {len(wanted)} days of {start}..{end} already succeeded")
        return dict.fromkeys(sorted(wanted), "success")
    _cancel_stale_backfills(demo, dag_id)
    # Days that already succeeded are kept; failed days run again.
    created = demo.api.create_backfill(
        dag_id, f"{start.isoformat()}T00:00:00Z", f"{end.isoformat()}T00:00:00Z", max_active_runs, "failed"
    )
    demo.say(f"{dag_id}: backfill {created['id']} created for {start}..{end} ({len(wanted)} days)")
    last_line = ""
    while True:
        runs = {ds: r for ds, r in _runs(demo, dag_id).items() if ds in wanted}
        finished = {ds: r["state"] for ds, r in runs.items() if r["state"] in ("success", "failed")}
        if len(finished) == len(wanted) and demo.api.backfill(created["id"]).get("completed_at"):
            return {ds: finished[ds] for ds in sorted(wanted)}
        active = [r for r in runs.values() if r["state"] == "running"]
        current = ""
        states = _task_states(demo, dag_id, {r["dag_run_id"] for r in active})
        for run in sorted(active, key=lambda r: r["logical_date"]):
            running = [t for t, st in states.get(run["dag_run_id"], {}).items() if st in ("running", "queued")]
            if running:
                current += f" {run['logical_date'][5:10]}:{','.join(running)}"
        failed = sorted(ds for ds, st in finished.items() if st == "failed")
        line = f"{dag_id}: {len(finished)}/{len(wanted)}" + (f" (failed {failed})" if failed else "") + current
        _watch_stack(demo)
        if line != last_line:
            demo.say(line)
            last_line = line
        if time.monotonic() > deadline:
            raise DemoError(f"backfill of {dag_id} not finished after {timeout:.0f}s: {line}")
        time.sleep(poll)


def _watch_stack(demo: Demo) -> None:
    """Fail the demo (StackError, with the logs to read) if a component of the stack has exited (one
    that lost its database is waited for while the watchdog restarts it)."""
    stack.check_running(demo.settings, demo.results.get("components", []))


def _cancel_stale_backfills(demo: Demo, dag_id: str) -> None:
    """Airflow allows one active backfill per DAG: one left by an interrupted demo is cancelled
    (its finished days stay; the new backfill reruns what it had not finished)."""
    for old in demo.api.backfills_of(dag_id):
        if not old.get("completed_at"):
            demo.api.cancel_backfill(old["id"])
            demo.say(f"{dag_id}: cancelled backfill {old['id']} left by an interrupted run")


def trigger(demo: Demo, dag_id: str, conf: dict[str, Any], poll: float = 1.0, timeout: float = 1800) -> dict[str, Any]:
    """Trigger a manual run with ``conf``, print task progress, return the finished run."""
    deadline = time.monotonic() + timeout
    run = demo.api.trigger(dag_id, conf)
    run_id = run["dag_run_id"]
    demo.say(f"{dag_id}: triggered run {run_id} with {json.dumps(conf)}")
    last_line = ""
    while True:
        run = demo.api.run(dag_id, run_id)
        states = demo.api.task_states(dag_id, run_id)
        _watch_stack(demo)
        running = sorted(t for t, st in states.items() if st in ("running", "queued"))
        done = sum(st in ("success", "skipped") for st in states.values())
        line = f"{dag_id}: {run['state']}, {done}/{len(states)} tasks done" + (
            f" | now {','.join(running)}" if running else ""
        )
        if line != last_line:
            demo.say(line)
            last_line = line
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            raise DemoError(f"{dag_id} run {run_id} not finished after {timeout:.0f}s: {line}")
        time.sleep(poll)


def range_run(demo: Demo, dag_id: str, start: dt.date, end: dt.date) -> dict[str, str]:
    """One range run of a daily DAG over ``start..end`` (its ``from_ds``/``to_ds`` Params); returns
    the state per day. A range that already succeeded (an earlier demo) is not run again."""
    conf = {"from_ds": start.isoformat(), "to_ds": end.isoformat()}
    days = [d.isoformat() for d in demo.days(start, end)]
    earlier = [r for r in demo.api.runs(dag_id, order_by="run_after") if (r.get("conf") or {}) == conf]
    if earlier and earlier[-1]["state"] == "success":
        demo.say(f"{dag_id}: {start}..{end} already done by run {earlier[-1]['dag_run_id']}")
        return dict.fromkeys(days, "success")
    run = trigger(demo, dag_id, conf)
    if run["state"] != "success":
        raise DemoError(
            f"{dag_id} run {run['dag_run_id']} for {start}..{end} failed: see its failed task's log in the UI "
            f"({demo.settings.airflow_url}) or under {demo.settings.airflow_home / 'logs'}"
        )
    return dict.fromkeys(days, "success")


def follow(demo: Demo, dag_id: str, start: dt.date, end: dt.date, timeout: float = 1800) -> dict[str, Any]:
    """The run of an asset-driven DAG for ``start..end`` that the scheduler creates from the upstream
    event (partition key ``start..end``): wait for it to appear and finish, printing its progress;
    nobody triggers it. Returns the finished run; a failed one stops the demo."""
    key = partition_keys.key_of([d.isoformat() for d in demo.days(start, end)])
    deadline = time.monotonic() + timeout
    last_line = ""
    while True:
        runs = [r for r in demo.api.runs(dag_id, order_by="run_after") if r.get("partition_key") == key]
        run = runs[-1] if runs else None
        if run is None:
            line = f"{dag_id}: waiting for the scheduler to create the run of partition {key} (from the asset event)"
        else:
            states = demo.api.task_states(dag_id, run["dag_run_id"])
            running = sorted(t for t, st in states.items() if st in ("running", "queued"))
            done = sum(st in ("success", "skipped") for st in states.values())
            line = f"{dag_id}: {run['run_type']} run of partition {key}: {run['state']}, {done}/{len(states)} tasks done" + (
                f" | now {','.join(running)}" if running else ""
            )
        if line != last_line:
            demo.say(line)
            last_line = line
        if run is not None and run["state"] == "success":
            return run
        if run is not None and run["state"] == "failed":
            raise DemoError(
                f"{dag_id} run {run['dag_run_id']} of partition {key} failed: see its failed task's log in the UI "
                f"({demo.settings.airflow_url}) or under {demo.settings.airflow_home / 'logs'}"
            )
        if time.monotonic() > deadline:
            raise DemoError(f"{dag_id}: no finished run of partition {key} after {timeout:.0f}s: {line}")
        _watch_stack(demo)
        time.sleep(1)


def xcom(demo: Demo, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value (XCom), through the REST API."""
    return demo.api.xcom_value(dag_id, run_id, task_id)


def _day_row(settings: config.Settings, day: dt.date, run_state: str) -> dict[str, Any]:
    row: dict[str, Any] = {"ds": day.isoformat(), "run": run_state}
    landed = lake.partition_path("landing", landing.DATASET, day, settings.lake)
    quarantined = lake.partition_path("quarantine", landing.DATASET, day, settings.lake)
    folder = landed if landed.is_dir() else quarantined
    manifest = folder / landing.MANIFEST
    if manifest.is_file():
        row["landed"] = json.loads(manifest.read_text())["files"]["flights"].get("rows", "?")
    row["landing_gate"] = (
        "pass" if (landed / landing.VALIDATION).is_file() else ("FAIL" if quarantined.is_dir() else "-")
    )
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
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def step_features(demo: Demo) -> None:
    """The first training window's features: one range run of flights_features (one Spark job). Its
    event starts a flights_scoring run, which finds no champion yet and skips: waited for here, so
    that it cannot score the window with the champion trained next."""
    for dag_id in (FEATURE_DAG, SCORING_DAG, MONITORING_DAG, RETRAINING_DAG):
        wait_for_dag(demo, dag_id)
    states = range_run(demo, FEATURE_DAG, demo.start, demo.end)
    demo.results["features"] = [_day_row(demo.settings, lake.parse_ds(ds), s) for ds, s in states.items()]
    follow(demo, SCORING_DAG, demo.start, demo.end)


def step_training(demo: Demo) -> None:
    """Train the first champion on the window's features through flights_training (a failed range run
    of the features has already stopped the demo: no training on a gappy window)."""
    wait_for_dag(demo, TRAINING_DAG)
    from flywheel.registry import history

    earlier = [
        r
        for r in history.read_history(demo.settings)
        if r.get("source") == "training" and r.get("as_of") == demo.end.isoformat() and r["decision"] == "promoted"
    ]
    if earlier and earlier[-1]["run"].get("dag_id") == TRAINING_DAG:
        run_id = earlier[-1]["run"]["run_id"]
        demo.say(
            f"{TRAINING_DAG}: v{earlier[-1]['version']} was already trained and promoted as of {demo.end} (run {run_id})"
        )
        demo.results["trained"] = xcom(demo, TRAINING_DAG, run_id, "train_and_gate.train_challenger")
        demo.results["decision"] = xcom(demo, TRAINING_DAG, run_id, "train_and_gate.promote_or_reject")
        return
    window = (demo.end - demo.start).days + 1
    conf = {"as_of": demo.end.isoformat(), "window_days": window, "tuning_trials": demo.settings.tuning_trials}
    run = trigger(demo, TRAINING_DAG, conf)
    if run["state"] != "success":
        raise DemoError(
            f"{TRAINING_DAG} run {run['dag_run_id']} failed: see the UI or {demo.settings.airflow_home / 'logs'}"
        )
    demo.results["trained"] = xcom(demo, TRAINING_DAG, run["dag_run_id"], "train_and_gate.train_challenger")
    demo.results["decision"] = xcom(demo, TRAINING_DAG, run["dag_run_id"], "train_and_gate.promote_or_reject")


def _prediction_rows(demo: Demo, states: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for ds, state in states.items():
        row: dict[str, Any] = {"ds": ds, "run": state}
        part = lake.partition_path("predictions", "flights", ds, demo.settings.lake)
        if (part / "_manifest.json").is_file():
            m = json.loads((part / "_manifest.json").read_text())
            row.update(scored=m["rows"], model_version=m["model_version"], predicted_delayed=m["positives"])
        rows.append(row)
    return rows


def _retraining_runs(demo: Demo) -> list[dict[str, Any]]:
    return demo.api.runs(RETRAINING_DAG, order_by="run_after")


def _retraining_outcome(demo: Demo, run: dict[str, Any]) -> dict[str, Any]:
    """What a retraining run decided: skipped by the guard (and why), or the gate's decision."""
    run_id = run["dag_run_id"]
    out: dict[str, Any] = {"run_id": run_id, "state": run["state"]}
    states = demo.api.task_states(RETRAINING_DAG, run_id)
    guard = xcom(demo, RETRAINING_DAG, run_id, "guard") if states.get("guard") == "success" else {}
    out["as_of"] = guard.get("as_of")
    if states.get("train_and_gate.promote_or_reject") == "success":
        decision = xcom(demo, RETRAINING_DAG, run_id, "train_and_gate.promote_or_reject")
        out.update(outcome=decision["decision"], reason=decision["reason"], version=decision["version"])
        out.update(as_of=decision["as_of"], champion_before=decision["champion_before"])
    elif guard and not guard.get("should_retrain"):
        out.update(outcome="skipped", reason=guard.get("reason", ""))
    else:
        out.update(outcome=run["state"], reason="")
    return out


def wait_for_retraining(demo: Demo, expect_new: bool, known: int, grace: float = 60, timeout: float = 1200) -> None:
    """Wait for the retraining runs the scheduler starts from drift events, until none is active."""
    deadline = time.monotonic() + timeout
    grace_end = time.monotonic() + (grace if expect_new else 0)
    last_line = ""
    while time.monotonic() < deadline:
        runs = _retraining_runs(demo)
        active = [r for r in runs if r["state"] in ("queued", "running")]
        if active:
            states = _task_states(demo, RETRAINING_DAG, {r["dag_run_id"] for r in active})
            now = sorted({t for st in states.values() for t, v in st.items() if v in ("running", "queued")})
            line = f"{RETRAINING_DAG}: run started by the scheduler from the drift event | now {','.join(now) or 'scheduling'}"
            if line != last_line:
                demo.say(line)
                last_line = line
        elif len(runs) > known or time.monotonic() >= grace_end:
            return
        _watch_stack(demo)
        time.sleep(3)
    raise DemoError(f"{RETRAINING_DAG} still running after {timeout:.0f}s; see the UI")


def step_forward(demo: Demo) -> None:
    """Week by week after the first champion: one range run of flights_features per new week, as time
    would pass in production; its event makes the scheduler run flights_scoring for the week, whose
    event makes it run flights_monitoring (followed here, never triggered). Drift makes the scheduler start flights_retraining; once a
    retraining has promoted a new champion the loop follows it for FOLLOW_DAYS more days, then stops
    (a rejected challenger leaves the old champion in place and the loop goes on)."""
    from flywheel.drift.daily_log import read_monitoring_history
    from flywheel.registry import history

    day, stop_at = demo.end + dt.timedelta(days=1), demo.until
    demo.results["forward"] = {"features": {}, "scoring": {}, "monitoring": {}}
    while day <= stop_at:
        end = min(day + dt.timedelta(days=demo.week - 1), stop_at)
        demo.say(f"--- week {day}..{end} ---")
        known = len(_retraining_runs(demo))
        # One week at a time: the week is scored and monitored before the next week's features, so
        # which champion scored a day never depends on timing.
        states = range_run(demo, FEATURE_DAG, day, end)
        demo.results["forward"]["features"].update(states)
        for dag_id, step in ((SCORING_DAG, "scoring"), (MONITORING_DAG, "monitoring")):
            run = follow(demo, dag_id, day, end)
            demo.results["forward"][step].update(dict.fromkeys(states, run["state"]))
        monitored = read_monitoring_history(demo.settings)
        drift_days = monitored.loc[(monitored["ds"] >= day.isoformat()) & (monitored["decision"] == "drift"), "ds"]
        if len(drift_days):
            demo.say(f"drift policy fired on {', '.join(drift_days)}: the drift asset event starts {RETRAINING_DAG}")
        wait_for_retraining(demo, expect_new=bool(len(drift_days)), known=known)
        decided = [r for r in history.read_history(demo.settings) if r.get("source") == "retraining"]
        for record in decided:
            if record["as_of"] not in demo.results.setdefault("reported", set()):
                demo.results["reported"].add(record["as_of"])
                model = f"v{record['version']}" if record.get("version") is not None else "no version"
                demo.say(f"retraining as of {record['as_of']}: {model} {record['decision']} ({record.get('reason') or record.get('error')})")
        promoted = [r for r in decided if r["decision"] == "promoted"]
        if promoted:
            # The loop closed: follow the new champion for FOLLOW_DAYS days after its as-of date.
            stop_at = max(end, min(demo.until, lake.parse_ds(promoted[0]["as_of"]) + dt.timedelta(days=FOLLOW_DAYS)))
        day = end + dt.timedelta(days=1)
    demo.results["retraining"] = [_retraining_outcome(demo, r) for r in _retraining_runs(demo)]
    demo.results["monitoring_end"] = stop_at


class DemoError(RuntimeError):
    """A step of the demo could not go on; the message says why and where to look."""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary(demo: Demo) -> int:
    rows = demo.results.get("features", [])
    ok = sum(r["run"] == "success" for r in rows) == len(rows)
    print()
    print(
        f"flights_features, first training window {demo.start}..{demo.end}: "
        f"{sum(r['run'] == 'success' for r in rows)}/{len(rows)} days, "
        f"{sum(r.get('features', 0) for r in rows)} feature rows; quarantined: "
        f"{[r['ds'] for r in rows if 'FAIL' in (r['landing_gate'], r['features_gate'])] or 'none'}"
    )
    trained, decision = demo.results.get("trained"), demo.results.get("decision")
    if trained and decision:
        m = trained["metrics"]
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
    forward = demo.results.get("forward")
    if forward:
        from flywheel.drift.daily_log import read_monitoring_history

        ok = ok and all(st == "success" for states in forward.values() for st in states.values())
        hist = read_monitoring_history(demo.settings)
        table = [
            {
                "ds": r["ds"],
                "drift_share": _fmt(r["drift_share"], 2),
                "pred_drift": _fmt(r["prediction_drift"], 2),
                "roc_auc_7d": _fmt(r["roc_auc"]),
                "holdout_auc": _fmt(r["champion_holdout_auc"]),
                "champion": f"v{r['champion_version']}",
                "signal": r["fired"] or "-",
                "decision": r["decision"],
            }
            for r in hist.to_dict("records")
        ]
        print()
        print("Monitoring, one row per day (flights_monitoring; ROC AUC pooled over the last 7 labelled days):")
        print(
            _table(
                table,
                ["ds", "drift_share", "pred_drift", "roc_auc_7d", "holdout_auc", "champion", "signal", "decision"],
            )
        )
        outcomes = demo.results.get("retraining", [])
        print()
        if not outcomes:
            print(
                f"{RETRAINING_DAG}: never started (the policy did not call drift up to {demo.results.get('monitoring_end')})"
            )
        for o in outcomes:
            print(
                f"{RETRAINING_DAG} run {o['run_id']} (started by the scheduler): {o['outcome']} "
                f"as of {o.get('as_of')}"
                + (f", v{o['version']}: {o['reason']}" if o.get("version") else f" {o['reason']}")
            )
        _print_comparison(demo)
    print()
    print(f"{'Done' if ok else 'Finished with failures'} in {time.monotonic() - demo.started:.0f}s.")
    print(f"Lake:       {demo.settings.lake}  (features/, predictions/, reports/monitoring/, monitoring/)")
    print(f"Data Docs:  {demo.settings.data_docs_dir / 'index.html'}")
    print(f"Reports:    {demo.settings.lake / 'reports' / 'monitoring'}  (Evidently HTML per day)")
    components = demo.results.get("components", [])
    restarted = stack.restarts(demo.settings).get("restarts") or {}
    done = ", ".join(f"{name} x{n}" for name, n in sorted(restarted.items()))
    print(f"Stack:      {len(components)} components, {sum(restarted.values())} restarts by the watchdog"
          + (f" after a lost database ({done})" if done else ""))
    if demo.settings.cluster:
        from flywheel import cluster

        for line in cluster.where_it_ran(demo.settings, demo.api.instances("~", "~")):
            print(line)
    print(stack.login_banner(demo.settings) + "  (the stack keeps running: make down)")
    print("History:    .venv/bin/python -m flywheel.registry history   |   .venv/bin/python -m flywheel.drift history")
    return 0 if ok else 1


def _print_comparison(demo: Demo) -> None:
    """After a retraining: the challenger vs the champion it was compared with, on the days that
    followed (for a promotion, what the old champion would have scored; for a rejection, what the
    challenger would have)."""
    from flywheel.compare import versions_on_days
    from flywheel.registry import history

    decided = [r for r in history.read_history(demo.settings) if r.get("source") == "retraining"]
    if not decided or not demo.results.get("monitoring_end"):
        return
    last = decided[-1]
    if last.get("compared_with") is None:
        return
    challenger, champion = int(last["version"]), int(last["compared_with"])
    after = demo.days(lake.parse_ds(last["as_of"]) + dt.timedelta(days=1), demo.results["monitoring_end"])
    rows = versions_on_days(after, [champion, challenger], demo.settings)
    if not rows:
        return
    print()
    print(
        f"The days after the retraining as of {last['as_of']} ({last['decision']}): ROC AUC of the challenger "
        f"v{challenger} and of v{champion}, the champion it was compared with"
    )
    table = [{k: _fmt(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    print(_table(table, ["ds", "rows", f"v{champion}", f"v{challenger}"]))


STEPS: list[Callable[[Demo], None]] = [step_features, step_training, step_forward]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=lake.parse_ds, default=DEFAULT_START, help="first day of the first window")
    parser.add_argument("--as-of", type=lake.parse_ds, default=DEFAULT_AS_OF, help="the first champion's as-of date")
    parser.add_argument("--until", type=lake.parse_ds, default=DEFAULT_UNTIL, help="monitor forward at most to here")
    args = parser.parse_args(argv)
    if not args.start < args.as_of < args.until:
        parser.error("need --start < --as-of < --until")
    demo = Demo(config.load(), args.start, args.as_of, args.until)
    parts = (
        "PostgreSQL, an MLflow tracking server, a Spark master and worker behind Spark Connect, Airflow with "
        f"{demo.settings.celery_workers} Celery workers"
        if demo.settings.cluster
        else "PostgreSQL, MLflow, Spark Connect, Airflow"
    )
    demo.say(f"starting the {demo.settings.profile} stack ({parts}) under {demo.settings.home}")
    try:
        seconds = stack.up(demo.settings)
    except stack.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    demo.results["stack_seconds"] = seconds
    demo.results["components"] = stack.expected_components(demo.settings)
    demo.say(f"stack up in {seconds:.0f}s")
    for line in stack.login_banner(demo.settings).splitlines():
        demo.say(line)
    try:
        for step in STEPS:
            step(demo)
    except (DemoError, stack.StackError, AirflowAPIError) as exc:
        summary(demo)
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return summary(demo)


if __name__ == "__main__":
    sys.exit(main())
