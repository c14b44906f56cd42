"""The reusable train -> evaluate -> promote task group, shared by flights_training and flights_retraining.

``train_and_gate(as_of, window_days, n_trials, source)`` builds:

    assemble_training_set -> validate_training_set [gate] -> train_challenger -> evaluate_challenger -> promote_or_reject

Every task pushes small JSON-able dicts to XCom (the MLflow run id and model version among them);
DataFrames never cross a task boundary: each task re-reads the immutable feature partitions and
``train_challenger`` checks that the rows it trained on hash to what the gate validated.
``train_challenger`` is keyed on its Airflow identity: a retry reuses the version an earlier try
registered (:mod:`flywheel.training.registration`).

In ``flights_retraining`` (``source="retraining"``) a task of the group that fails for good records
the failure in the promotion history (:func:`record_failed_retraining`, an ``on_failure_callback``:
it runs in the failed task's process and has its exception), so the guard's cooldown covers a
retraining that failed as it covers one that decided.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from flywheel.orchestration import alerts

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)
# The flights_retraining task whose XCom holds the drift evidence and the as-of date.
GUARD_TASK = "guard"
MAX_ERROR_CHARS = 2000


def run_context(source: str, **extra: Any) -> dict[str, Any]:
    """Who is running: recorded as MLflow tags and in the promotion history."""
    ctx = get_current_context()
    ti = ctx["ti"]
    return {
        "source": source,
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        **extra,
    }


@task
def assemble_training_set(as_of: str, window_days: int) -> dict[str, Any]:
    """Read the window's feature partitions (an empty or malformed window fails naming it; missing days
    are recorded and judged by the gate)."""
    from flywheel.training import data

    try:
        ts = data.assemble(as_of, int(window_days), allow_missing=True)
    except data.TrainingDataError as exc:
        raise AirflowFailException(str(exc)) from exc
    return {**data.describe(ts), "window_days": int(window_days)}


@task(on_failure_callback=alerts.training_set_gate())
def validate_training_set(assembled: dict[str, Any]) -> dict[str, Any]:
    """Gate on the training set: enough rows, sane label rate, no missing partition in the window."""
    from flywheel.training import data, gate

    ts = data.assemble(assembled["as_of"], assembled["window_days"], allow_missing=True)
    try:
        result = gate.validate_training_set(ts)
    except data.TrainingDataError as exc:
        raise AirflowFailException(str(exc)) from exc
    return {**assembled, "gate": result}


@task
def train_challenger(validated: dict[str, Any], n_trials: int, source: str) -> dict[str, Any]:
    """Tune and train on the validated window; registers a new version with alias ``challenger``."""
    from flywheel.training import train
    from flywheel.training.registration import Attempt

    ctx = run_context(source)
    tags = {f"airflow.{k}": v for k, v in ctx.items() if k != "source"} | {"flywheel.source": source}
    attempt = Attempt(ctx["dag_id"], ctx["run_id"], ctx["task_id"], int(ctx["try_number"]))
    result = train.train(
        validated["as_of"], window_days=validated["window_days"], n_trials=int(n_trials), tags=tags, attempt=attempt
    )
    if result["training_set_sha256"] != validated["content_hash"]:
        raise AirflowFailException(
            f"the features of {validated['window'][0]}..{validated['window'][1]} changed between the gate and "
            f"training (hash {validated['content_hash'][:12]} -> {result['training_set_sha256'][:12]}); "
            "rerun the task group so the gate sees what training uses"
        )
    return {**result, "window_days": validated["window_days"]}


@task
def evaluate_challenger(trained: dict[str, Any]) -> dict[str, Any]:
    """Score the challenger and the current champion on the same holdout days."""
    from flywheel import config
    from flywheel.registry import promotion
    from flywheel.training import data

    settings = config.load()
    ts = data.assemble(trained["as_of"], trained["window_days"], settings)
    holdout = ts.split(settings.holdout_days).holdout
    challenger, champion, champion_version = promotion.evaluate_challenger(int(trained["model_version"]), holdout, settings)
    return {
        "as_of": trained["as_of"],
        "run_id": trained["run_id"],
        "model_version": int(trained["model_version"]),
        "holdout_days": trained["holdout_days"],
        "challenger": challenger,
        "champion": champion,
        "champion_version": champion_version,
    }


@task(on_success_callback=alerts.PromotionAlert())
def promote_or_reject(evaluated: dict[str, Any], source: str, evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    """The champion/challenger gate: move ``champion`` or not, and record why."""
    from flywheel.registry import promotion

    context = run_context(source, as_of=evaluated["as_of"], mlflow_run_id=evaluated["run_id"])
    if evidence:
        context["drift_evidence"] = evidence
    record = promotion.promote_or_reject(
        evaluated["model_version"],
        evaluated["challenger"],
        evaluated["champion"],
        evaluated["champion_version"],
        context=context,
    )
    return {k: record[k] for k in ("decision", "reason", "version", "champion_before", "champion_after", "as_of")} | {
        "run_id": evaluated["run_id"]
    }


@task_group(group_id="train_and_gate")
def train_and_gate(as_of: Any, window_days: Any, n_trials: Any, source: str, evidence: Any = None) -> None:
    """assemble -> gate -> train -> evaluate -> promote. Calling it returns the TaskGroup (wire it with >>);
    the decision is the XCom of ``train_and_gate.promote_or_reject``."""
    assemble, validate, train, evaluate, promote = (
        assemble_training_set, validate_training_set, train_challenger, evaluate_challenger, promote_or_reject
    )  # fmt: skip
    if source == "retraining":
        # Each task's own failure callbacks (the gate's alert), plus the history record of a failed retraining.
        assemble, train, evaluate, promote = (
            t.override(on_failure_callback=[record_failed_retraining]) for t in (assemble, train, evaluate, promote)
        )
        validate = validate.override(on_failure_callback=[alerts.training_set_gate(), record_failed_retraining])
    assembled = assemble(as_of, window_days)
    validated = validate(assembled)
    trained = train(validated, n_trials, source)
    evaluated = evaluate(trained)
    promote(evaluated, source, evidence)


def record_failed_retraining(context: Context) -> None:
    """``on_failure_callback`` of the retraining's training group: append a ``failed`` record (the task,
    its try and error, the as-of date, the version if one was trained) to the promotion history."""
    from flywheel import config
    from flywheel.registry import history

    ti = context["ti"]
    group = ti.task_id.rpartition(".")[0]
    prefix = f"{group}." if group else ""
    guard = ti.xcom_pull(task_ids=GUARD_TASK) or {}
    assembled = ti.xcom_pull(task_ids=f"{prefix}assemble_training_set") or {}
    trained = ti.xcom_pull(task_ids=f"{prefix}train_challenger") or {}
    error = context.get("exception")
    text = f"{type(error).__name__}: {error}" if error is not None else "no exception (killed, or timed out)"
    settings = config.load()
    # The champion from the history, not MLflow: MLflow being down may be why the task failed.
    known = history.read_history(settings)
    champion = known[-1].get("champion_after") if known else None
    version = trained.get("model_version")
    record = {
        "ts": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "as_of": assembled.get("as_of") or guard.get("as_of"),
        "model": settings.model_name,
        "version": int(version) if version is not None else None,
        "decision": "failed",
        "reason": f"failed: {ti.task_id} (try {ti.try_number}): {text}"[:MAX_ERROR_CHARS],
        "champion_before": champion,
        "champion_after": champion,
        "compared_with": None,
        "primary_metric": settings.primary_metric,
        "challenger_primary": None,
        "champion_primary": None,
        "metrics": {},
        "checks": [],
        "source": "retraining",
        "run": {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "try_number": ti.try_number,
            "mlflow_run_id": trained.get("run_id"),
            "drift_evidence": guard.get("evidence"),
        },
    }
    path = history.append_record(settings, record, lock=False)
    log.info("recorded the failed retraining as of %s in %s: %s", record["as_of"], path, record["reason"])


@task.branch
def choose_mode(params: dict[str, Any] | None = None) -> str:
    """Train (the default) or roll back when ``rollback_to_version`` is set."""
    if params and params.get("rollback_to_version"):
        return "rollback_champion"
    return "train_and_gate.assemble_training_set"


@task
def rollback_champion(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Point ``champion`` back to ``rollback_to_version``; recorded in the promotion history."""
    from flywheel.registry import promotion

    params = params or {}
    reason = (params.get("rollback_reason") or "").strip()
    if not reason:
        raise AirflowFailException("rollback_to_version is set but rollback_reason is empty: say why")
    record = promotion.rollback(int(params["rollback_to_version"]), reason=reason, context=run_context("rollback"))
    return {k: record.get(k) for k in ("decision", "reason", "version", "champion_before", "champion_after")}
