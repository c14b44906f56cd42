"""The demo's printed summary, and the rows it prints: each first-window day's landing and features
gates, each retraining run's outcome, the monitoring history, the challenger vs champion comparison."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from tabulate import tabulate

from flywheel import catalog, config, features, lake, landing, stack, watchdog
from flywheel.demo_runs import RETRAINING_DAG, Demo, xcom


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """``columns`` of ``rows`` as a plain-text table, every cell left-aligned as it reads (cells are
    already formatted: no number parsing, no decimal alignment)."""
    return tabulate([[str(r.get(c, "")) for c in columns] for r in rows], headers=columns, disable_numparse=True)


def day_row(settings: config.Settings, day: dt.date, run_state: str) -> dict[str, Any]:
    row: dict[str, Any] = {"ds": day.isoformat(), "run": run_state}
    landed = catalog.LANDING_FLIGHTS.path(day, settings.lake)
    quarantined = catalog.QUARANTINE_LANDING.path(day, settings.lake)
    folder = landed if landed.is_dir() else quarantined
    manifest = folder / landing.MANIFEST
    if manifest.is_file():
        row["landed"] = json.loads(manifest.read_text())["files"]["flights"].get("rows", "?")
    row["landing_gate"] = (
        "pass" if (landed / landing.VALIDATION).is_file() else ("FAIL" if quarantined.is_dir() else "-")
    )
    feat = catalog.FEATURES.path(day, settings.lake)
    if feat.is_dir():
        m = features.read_manifest(feat)
        row.update(feature_rows=m["rows"], cancelled=m["excluded_cancelled"], diverted=m["excluded_diverted"])
        row["features_gate"] = "pass"
    elif catalog.QUARANTINE_FEATURES.exists(day, settings.lake):
        row["features_gate"] = "FAIL"
    else:
        row["features_gate"] = "-"
    return row


def _prediction_rows(demo: Demo, states: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for ds, state in states.items():
        row: dict[str, Any] = {"ds": ds, "run": state}
        part = catalog.PREDICTIONS.path(ds, demo.settings.lake)
        if (part / "_manifest.json").is_file():
            m = json.loads((part / "_manifest.json").read_text())
            row.update(scored=m["rows"], model_version=m["model_version"], predicted_delayed=m["positives"])
        rows.append(row)
    return rows


def retraining_outcome(demo: Demo, run: dict[str, Any]) -> dict[str, Any]:
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


def summary(demo: Demo) -> int:
    rows = demo.results.get("first_window", [])
    ok = sum(r["run"] == "success" for r in rows) == len(rows)
    print()
    print(
        f"flights_features, first training window {demo.start}..{demo.end}: "
        f"{sum(r['run'] == 'success' for r in rows)}/{len(rows)} days, "
        f"{sum(r.get('feature_rows', 0) for r in rows)} feature rows; quarantined: "
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
    print(f"Reports:    {catalog.MONITORING_REPORTS.dir(demo.settings.lake)}  (Evidently HTML per day)")
    components = demo.results.get("components", [])
    restarted = watchdog.restarts(demo.settings).get("restarts") or {}
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
