"""flywheel.registry: the gate (pure), promotion/rejection on a real MLflow store, rollback, history, locking."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow_store import features_frame, fresh_store, register, tiny_pipeline

from flywheel import config
from flywheel.faults import FailpointError
from flywheel.registry import (
    CHALLENGER,
    CHAMPION,
    Decision,
    RegistryError,
    RegistryLockTimeout,
    current_champion,
    decide_promotion,
    evaluate_challenger,
    history,
    promote_or_reject,
    read_history,
    registry_lock,
    rollback,
)
from flywheel.registry.__main__ import main as cli
from flywheel.registry.client import connect
from flywheel.registry.lock import ADVISORY_KEY, lock_path, uses_advisory_lock

# Real Great Expectations / Evidently / MLflow / training on real days: not in `make test-fast`.
pytestmark = pytest.mark.integration

AS_OF = "2013-03-01"


@pytest.fixture
def gate() -> config.Settings:
    return dataclasses.replace(
        config.load(),
        primary_metric="roc_auc",
        promotion_floor=0.6,
        promotion_margin=0.002,
        slice_tolerance=0.03,
        slice_min_rows=300,
    )


def m(auc: float, **slices: tuple[float, int]) -> dict[str, float]:
    """Metrics: overall roc_auc plus slices given as carrier__UA=(auc, rows)."""
    out = {"roc_auc": auc, "pr_auc": 0.4, "rows": 5000.0}
    for key, (value, rows) in slices.items():
        dim, val = key.split("__")
        out[f"roc_auc__{dim}__{val}"] = value
        out[f"rows__{dim}__{val}"] = float(rows)
    return out


# --- decide_promotion(): the pure gate ---------------------------------------------------------------------


def test_first_model_needs_only_the_floor(gate: config.Settings) -> None:
    d = decide_promotion(m(0.65), None, gate)
    assert d == Decision(
        promote=True,
        reason="promoted: first model, roc_auc 0.65 >= floor 0.6",
        checks=[{"name": "floor", "value": 0.65, "threshold": 0.6, "passed": True}],
        primary_metric="roc_auc",
        challenger_primary=0.65,
        champion_primary=None,
    )
    assert d.decision == "promoted"


def test_first_model_under_the_floor_is_rejected(gate: config.Settings) -> None:
    d = decide_promotion(m(0.55), None, gate)
    assert not d.promote
    assert d.reason == "rejected: first model, roc_auc 0.55 < floor 0.6"


def test_better_challenger_is_promoted_with_slice_count(gate: config.Settings) -> None:
    challenger = m(0.72, carrier__UA=(0.70, 400), origin__JFK=(0.71, 900))
    champion = m(0.70, carrier__UA=(0.71, 380), origin__JFK=(0.69, 880))
    d = decide_promotion(challenger, champion, gate)
    assert d.promote
    assert d.reason == (
        "promoted: roc_auc 0.72 >= champion 0.7 + margin 0.002; 2 slices with >= 300 rows within tolerance 0.03"
    )
    assert [c["name"] for c in d.checks] == [
        "floor",
        "margin",
        "slice:roc_auc__carrier__UA",
        "slice:roc_auc__origin__JFK",
    ]
    assert d.checks[2] == {
        "name": "slice:roc_auc__carrier__UA",
        "value": 0.70,
        "threshold": pytest.approx(0.68),
        "passed": True,
        "rows": 400,
    }
    assert (d.challenger_primary, d.champion_primary) == (0.72, 0.70)


def test_reject_by_margin(gate: config.Settings) -> None:
    d = decide_promotion(m(0.706), m(0.705), gate)
    assert not d.promote
    assert d.reason == "rejected: roc_auc 0.706 < champion 0.705 + margin 0.002"
    assert d.checks[1] == {"name": "margin", "value": 0.706, "threshold": pytest.approx(0.707), "passed": False}


def test_exactly_the_margin_passes(gate: config.Settings) -> None:
    # 0.705 + 0.002 is 0.7070000000000001 in floats: a tie must still pass.
    assert decide_promotion(m(0.707), m(0.705), gate).promote


def test_floor_applies_even_when_better_than_the_champion(gate: config.Settings) -> None:
    d = decide_promotion(m(0.59), m(0.55), gate)
    assert not d.promote
    assert d.reason == "rejected: roc_auc 0.59 < floor 0.6"


def test_reject_by_slice_regression(gate: config.Settings) -> None:
    challenger = m(0.75, carrier__UA=(0.65, 400), origin__JFK=(0.74, 900))
    champion = m(0.70, carrier__UA=(0.70, 410), origin__JFK=(0.70, 880))
    d = decide_promotion(challenger, champion, gate)
    assert not d.promote
    assert d.reason == "rejected: roc_auc__carrier__UA 0.65 < champion 0.7 - tolerance 0.03 (n=400)"
    assert [c["passed"] for c in d.checks] == [True, True, False, True]


def test_all_failures_are_listed_after_the_first(gate: config.Settings) -> None:
    challenger = m(0.70, carrier__UA=(0.60, 400), origin__EWR=(0.50, 500))
    champion = m(0.71, carrier__UA=(0.70, 400), origin__EWR=(0.70, 500))
    d = decide_promotion(challenger, champion, gate)
    assert d.reason == (
        "rejected: roc_auc 0.7 < champion 0.71 + margin 0.002; 2 more failing: "
        "roc_auc__carrier__UA 0.6 < champion 0.7 - tolerance 0.03 (n=400); "
        "roc_auc__origin__EWR 0.5 < champion 0.7 - tolerance 0.03 (n=500)"
    )


def test_small_one_sided_and_undefined_slices_are_skipped(gate: config.Settings) -> None:
    challenger = m(0.75, carrier__UA=(0.10, 299), carrier__AA=(0.10, 1000), origin__LGA=(math.nan, 700))
    challenger["roc_auc__origin__JFK"] = 0.1  # no row count: not comparable
    champion = m(0.70, carrier__UA=(0.90, 2000), origin__LGA=(0.80, 700), origin__JFK=(0.9, 900))
    d = decide_promotion(challenger, champion, gate)
    assert d.promote, d.reason
    assert [c["name"] for c in d.checks] == ["floor", "margin"]
    assert d.reason.endswith("; 0 slices with >= 300 rows within tolerance 0.03")


def test_missing_primary_metric_is_a_clear_error(gate: config.Settings) -> None:
    with pytest.raises(KeyError, match="the champion's metrics lack the primary metric 'roc_auc'"):
        decide_promotion(m(0.7), {"pr_auc": 0.3}, gate)


def test_other_primary_metric(gate: config.Settings) -> None:
    gate = dataclasses.replace(gate, primary_metric="pr_auc", promotion_floor=0.2)
    d = decide_promotion({"pr_auc": 0.41}, {"pr_auc": 0.40}, gate)
    assert d.promote and d.reason.startswith("promoted: pr_auc 0.41 >= champion 0.4 + margin 0.002")


# --- promotion on a real MLflow store ------------------------------------------------------------


class FakeEval:
    """evaluate_fn whose metrics depend on the model (its C) and record the threshold it was given."""

    def __init__(self, by_c: dict[float, dict[str, float]]) -> None:
        self.by_c = by_c
        self.calls: list[tuple[float, float]] = []

    def __call__(self, model: Any, frame: Any, threshold: float) -> dict[str, float]:
        c = model.named_steps["model"].C
        self.calls.append((c, threshold))
        return dict(self.by_c[c])


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    # The expected reasons below pin the gate's numbers, not the shipped defaults.
    monkeypatch.setenv("FLYWHEEL_PROMOTION_FLOOR", "0.6")
    monkeypatch.setenv("FLYWHEEL_PROMOTION_MARGIN", "0.002")
    monkeypatch.setenv("FLYWHEEL_SLICE_TOLERANCE", "0.03")
    monkeypatch.setenv("FLYWHEEL_SLICE_MIN_ROWS", "300")
    return fresh_store(tmp_path, monkeypatch)


@pytest.fixture
def frame() -> Any:
    return features_frame("2013-02-25", rows=80)


def _new_version(settings: config.Settings, frame: Any, c: float, threshold: float = 0.5) -> int:
    """Register a model (identified by its C) and point `challenger` at it, like training does."""
    version = register(settings, tiny_pipeline(frame, c=c), threshold=threshold)
    connect(settings).set_registered_model_alias(settings.model_name, CHALLENGER, str(version))
    return version


def _aliases(settings: config.Settings) -> dict[str, str]:
    return {k: str(v) for k, v in connect(settings).get_registered_model(settings.model_name).aliases.items()}


def _tags(settings: config.Settings, version: int) -> dict[str, str]:
    return dict(connect(settings).get_model_version(settings.model_name, str(version)).tags)


def _run(settings: config.Settings, version: int, frame: Any, fake: FakeEval, **ctx: Any) -> dict[str, Any]:
    challenger, champion, champion_version = evaluate_challenger(version, frame, settings, fake)
    context = {"as_of": AS_OF, "source": "training", "dag_id": "flights_training", "run_id": "manual__1", **ctx}
    return promote_or_reject(version, challenger, champion, champion_version, settings, context)


def test_first_model_is_promoted(store: config.Settings, frame: Any) -> None:
    v1 = _new_version(store, frame, c=1.0, threshold=0.37)
    fake = FakeEval({1.0: m(0.65)})
    record = _run(store, v1, frame, fake)

    assert fake.calls == [(1.0, 0.37)]  # the version's own decision_threshold tag
    assert record["decision"] == "promoted"
    assert record["reason"] == "promoted: first model, roc_auc 0.65 >= floor 0.6"
    assert (record["champion_before"], record["champion_after"]) == (None, v1)
    assert _aliases(store) == {CHAMPION: str(v1)}  # challenger alias removed from the new champion
    assert current_champion(store) == v1
    tags = _tags(store, v1)
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.champion_before"] == "none"
    assert tags["promotion.decided_at"] == AS_OF
    assert tags["promotion.roc_auc"] == "0.650000"
    assert json.loads(tags["promotion.checks"]) == [{"name": "floor", "value": 0.65, "threshold": 0.6, "passed": True}]
    [line] = read_history(store)
    assert line == record
    assert {k: line[k] for k in ("as_of", "model", "version", "source")} == {
        "as_of": AS_OF,
        "model": "flights_delay",
        "version": v1,
        "source": "training",
    }
    assert line["run"] == {"dag_id": "flights_training", "run_id": "manual__1"}


def test_first_model_under_the_floor_leaves_no_champion(store: config.Settings, frame: Any) -> None:
    v1 = _new_version(store, frame, c=1.0)
    record = _run(store, v1, frame, FakeEval({1.0: m(0.52)}))
    assert record["decision"] == "rejected"
    assert record["reason"] == "rejected: first model, roc_auc 0.52 < floor 0.6"
    assert current_champion(store) is None
    assert _aliases(store) == {CHALLENGER: str(v1)}  # a rejected version stays the challenger
    assert _tags(store, v1)["promotion.failed_checks"] == "floor"


def test_better_challenger_takes_over(store: config.Settings, frame: Any) -> None:
    fake = FakeEval({1.0: m(0.70, carrier__UA=(0.70, 400)), 2.0: m(0.72, carrier__UA=(0.69, 400))})
    v1 = _new_version(store, frame, c=1.0, threshold=0.4)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0, threshold=0.45)
    record = _run(store, v2, frame, fake, source="retraining")

    assert fake.calls[-2:] == [(2.0, 0.45), (1.0, 0.4)]  # challenger then champion, each with its threshold
    assert record["decision"] == "promoted"
    assert record["reason"] == (
        "promoted: roc_auc 0.72 >= champion 0.7 + margin 0.002; 1 slices with >= 300 rows within tolerance 0.03"
    )
    assert (record["champion_before"], record["champion_after"], record["compared_with"]) == (v1, v2, v1)
    assert record["metrics"]["champion"]["roc_auc"] == 0.70
    assert _aliases(store) == {CHAMPION: str(v2)}
    assert _tags(store, v2)["promotion.champion_before"] == f"v{v1}"
    assert _tags(store, v2)["promotion.champion_roc_auc"] == "0.700000"
    assert [(r["version"], r["decision"], r["source"]) for r in read_history(store)] == [
        (v1, "promoted", "training"),
        (v2, "promoted", "retraining"),
    ]


def test_reject_by_margin_keeps_the_champion(store: config.Settings, frame: Any) -> None:
    fake = FakeEval({1.0: m(0.705), 2.0: m(0.706)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    record = _run(store, v2, frame, fake)
    assert record["decision"] == "rejected"
    assert record["reason"] == "rejected: roc_auc 0.706 < champion 0.705 + margin 0.002"
    assert (record["champion_before"], record["champion_after"]) == (v1, v1)
    assert _aliases(store) == {CHAMPION: str(v1), CHALLENGER: str(v2)}
    tags = _tags(store, v2)
    assert tags["promotion.decision"] == "rejected"
    assert tags["promotion.reason"] == record["reason"]
    assert tags["promotion.failed_checks"] == "margin"


def test_reject_by_slice_regression_on_the_store(store: config.Settings, frame: Any) -> None:
    fake = FakeEval({1.0: m(0.70, origin__EWR=(0.72, 800)), 2.0: m(0.75, origin__EWR=(0.60, 790))})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    record = _run(store, v2, frame, fake)
    assert record["reason"] == "rejected: roc_auc__origin__EWR 0.6 < champion 0.72 - tolerance 0.03 (n=790)"
    assert current_champion(store) == v1
    assert _tags(store, v2)["promotion.failed_checks"] == "slice:roc_auc__origin__EWR"


def test_stale_comparison_is_rejected(store: config.Settings, frame: Any) -> None:
    fake = FakeEval({1.0: m(0.70), 2.0: m(0.71), 3.0: m(0.75)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    v3 = _new_version(store, frame, c=3.0)
    evaluated = evaluate_challenger(v3, frame, store, fake)  # compared with v1 ...
    assert evaluated[2] == v1
    _run(store, v2, frame, fake)  # ... but v2 becomes champion meanwhile
    record = promote_or_reject(v3, *evaluated, store, {"as_of": AS_OF, "source": "retraining"})
    assert record["decision"] == "rejected"
    assert record["reason"] == f"rejected: champion changed during evaluation (v{v1} -> v{v2}); rerun the evaluation"
    assert current_champion(store) == v2


def test_a_retried_promotion_is_recorded_once(store: config.Settings, frame: Any) -> None:
    fake = FakeEval({1.0: m(0.70)})
    v1 = _new_version(store, frame, c=1.0)
    challenger, champion, champion_version = evaluate_challenger(v1, frame, store, fake)
    first = promote_or_reject(v1, challenger, champion, champion_version, store, {"as_of": AS_OF})
    again = promote_or_reject(v1, challenger, champion, champion_version, store, {"as_of": AS_OF})
    assert again == first
    assert len(read_history(store)) == 1


def test_unknown_challenger_version_names_the_existing_ones(store: config.Settings, frame: Any) -> None:
    v1 = _new_version(store, frame, c=1.0)
    with pytest.raises(RegistryError) as info:
        evaluate_challenger(7, frame, store, FakeEval({}))
    assert str(info.value) == f"registered model 'flights_delay' has no version 7; its versions: v{v1}"


def test_missing_threshold_tag_names_the_version(store: config.Settings, frame: Any) -> None:
    v1 = register(store, tiny_pipeline(frame), threshold=None)
    with pytest.raises(RegistryError, match=f"model flights_delay v{v1} has no 'decision_threshold' tag"):
        evaluate_challenger(v1, frame, store, FakeEval({1.0: m(0.7)}))


def test_real_evaluate_produces_the_slice_keys_the_gate_reads(store: config.Settings, frame: Any) -> None:
    """With flywheel.training.model.evaluate (the default), both models are scored on one holdout."""
    v1 = _new_version(store, frame, c=1.0)
    connect(store).set_registered_model_alias(store.model_name, CHAMPION, str(v1))
    v2 = _new_version(store, frame, c=0.01)
    holdout = features_frame("2013-02-26", rows=400, seed=1)
    challenger, champion, champion_version = evaluate_challenger(v2, holdout, store)
    assert champion_version == v1
    assert set(challenger) == set(champion)
    assert {"roc_auc", "rows__carrier__UA", "roc_auc__carrier__UA", "rows__origin__JFK"} <= set(challenger)
    gate = dataclasses.replace(store, slice_min_rows=50, promotion_floor=0.5)
    d = decide_promotion(challenger, champion, gate)
    assert sum(c["name"].startswith("slice:") for c in d.checks) == 7  # 4 carriers + 3 origins


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_promotions_leave_one_champion(store: config.Settings, frame: Any) -> None:
    fake = FakeEval({1.0: m(0.70), 2.0: m(0.74), 3.0: m(0.75)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    v3 = _new_version(store, frame, c=3.0)
    evaluated = {v: evaluate_challenger(v, frame, store, fake) for v in (v2, v3)}
    assert {e[2] for e in evaluated.values()} == {v1}  # both compared with v1

    barrier = threading.Barrier(2)
    results: dict[int, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def promote(version: int) -> None:
        try:
            barrier.wait()
            results[version] = promote_or_reject(version, *evaluated[version], store, {"as_of": AS_OF})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in (v2, v3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors

    decisions = sorted((r["decision"], v) for v, r in results.items())
    assert [d for d, _ in decisions] == ["promoted", "rejected"]
    winner = next(v for v, r in results.items() if r["decision"] == "promoted")
    loser = next(v for v, r in results.items() if r["decision"] == "rejected")
    assert results[loser]["reason"] == (
        f"rejected: champion changed during evaluation (v{v1} -> v{winner}); rerun the evaluation"
    )
    assert current_champion(store) == winner
    assert list(_aliases(store).values()).count(str(winner)) == 1
    history = read_history(store)
    assert [(r["version"], r["decision"]) for r in history[1:]] == [(winner, "promoted"), (loser, "rejected")]


def _holder(env: dict[str, str]) -> subprocess.Popen[str]:
    """A child process that takes the registry lock with its own settings and holds it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from flywheel import config; from flywheel.registry import registry_lock\n"
            "with registry_lock(config.load()) as lock:\n    print('held', flush=True); print(lock, flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=Path(__file__).resolve().parents[2],
    )


def test_the_lock_excludes_other_processes(store: config.Settings) -> None:
    # A SQLite store: the file lock beside it.
    assert lock_path(store) == store.home / "mlflow" / "mlflow.db.registry.lock"
    holder = _holder({})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(RegistryLockTimeout, match="another promotion or rollback holds it") as info:
            with registry_lock(store, timeout_s=0.3):
                pass
        assert f"the file lock {lock_path(store)}" in str(info.value)
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()
    with registry_lock(store, timeout_s=5):  # released when the holder died
        with registry_lock(store, timeout_s=0):  # re-entrant in one thread
            pass


def test_the_advisory_lock_excludes_workers_that_share_only_mlflow(tmp_path: Path) -> None:
    """A PostgreSQL store (the suite's embedded server): two processes with different FLYWHEEL_HOMEs
    exclude each other, and a holder killed with SIGKILL releases the lock with its session."""
    url = config.with_database(os.environ["FLYWHEEL_DATABASE_URL"], "postgres", "postgresql")
    mine = dataclasses.replace(config.load(), home=tmp_path / "mine", mlflow_backend_uri=url)
    assert uses_advisory_lock(mine)
    holder = _holder({"FLYWHEEL_HOME": str(tmp_path / "theirs"), "MLFLOW_TRACKING_URI": url})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RegistryLockTimeout) as info:
            with registry_lock(mine, timeout_s=0.3):
                pass
        assert holder.stdout.readline().startswith("the PostgreSQL advisory lock")
        assert f"the PostgreSQL advisory lock {ADVISORY_KEY} in MLflow's database" in str(info.value)
        assert "/postgres" in str(info.value)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        started = time.monotonic()
        with registry_lock(mine, timeout_s=10):  # the server ended the killed holder's session
            with registry_lock(mine, timeout_s=0):  # re-entrant in one thread
                pass
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


# --- a promotion killed half-way ------------------------------------------------------------------


def test_a_promotion_killed_after_the_alias_moved_is_completed_by_its_rerun(
    store: config.Settings, frame: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEval({1.0: m(0.70), 2.0: m(0.75)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    evaluated = evaluate_challenger(v2, frame, store, fake)
    context = {"as_of": AS_OF, "source": "training"}
    monkeypatch.setenv("FLYWHEEL_FAILPOINTS", "registry.promote.alias_moved=raise")
    with pytest.raises(FailpointError):
        promote_or_reject(v2, *evaluated, store, context)
    monkeypatch.delenv("FLYWHEEL_FAILPOINTS")
    # Half-done: the alias moved, the history holds the decision as pending only.
    assert _aliases(store) == {CHAMPION: str(v2), CHALLENGER: str(v2)}
    assert [r["version"] for r in read_history(store)] == [v1]
    assert [(r["version"], r["decision"]) for r in history.pending(store)] == [(v2, "promoted")]

    record = promote_or_reject(v2, *evaluated, store, context)  # the task's retry
    assert (record["decision"], record["champion_before"], record["champion_after"]) == ("promoted", v1, v2)
    assert _aliases(store) == {CHAMPION: str(v2)}
    assert _tags(store, v2)["promotion.champion_before"] == f"v{v1}"
    assert read_history(store)[-1] == record
    assert [(r["version"], r["champion_before"], r["champion_after"]) for r in read_history(store)] == [
        (v1, None, v1),
        (v2, v1, v2),
    ]
    assert history.pending(store) == []


def test_a_half_done_promotion_is_completed_before_the_next_decision(
    store: config.Settings, frame: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEval({1.0: m(0.70), 2.0: m(0.75), 3.0: m(0.80)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    v3 = _new_version(store, frame, c=3.0)
    monkeypatch.setenv("FLYWHEEL_FAILPOINTS", "registry.promote.alias_moved=raise")
    with pytest.raises(FailpointError):
        _run(store, v2, frame, fake)
    monkeypatch.delenv("FLYWHEEL_FAILPOINTS")
    record = _run(store, v3, frame, fake, source="retraining")  # evaluated against v2, the alias
    assert (record["champion_before"], record["champion_after"]) == (v2, v3)
    assert [(r["version"], r["champion_before"], r["champion_after"]) for r in read_history(store)] == [
        (v1, None, v1),
        (v2, v1, v2),  # completed by the next holder of the lock, in its place
        (v3, v2, v3),
    ]
    assert _tags(store, v2)["promotion.decision"] == "promoted"


def test_a_pending_promotion_whose_alias_was_moved_by_hand_is_abandoned(
    store: config.Settings, frame: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEval({1.0: m(0.70), 2.0: m(0.75)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    v3 = _new_version(store, frame, c=1.0)
    monkeypatch.setenv("FLYWHEEL_FAILPOINTS", "registry.promote.alias_moved=raise")
    with pytest.raises(FailpointError):
        _run(store, v2, frame, fake)
    monkeypatch.delenv("FLYWHEEL_FAILPOINTS")
    connect(store).set_registered_model_alias(store.model_name, CHAMPION, str(v3))  # by hand, in MLflow's UI
    rollback(v1, store, "v3 was set by hand", {"as_of": AS_OF})
    assert history.pending(store) == []
    assert [(r["version"], r["decision"]) for r in read_history(store)] == [(v1, "promoted"), (v1, "rollback")]
    assert read_history(store)[-1]["champion_before"] == v3
    assert '"state": "abandoned"' in history.history_path(store).read_text()


# --- a failed retraining is recorded -----------------------------------------------------------------


class _TI:
    """The part of a task instance the failure callback reads."""

    def __init__(self, task_id: str, xcoms: dict[str, dict]) -> None:
        self.dag_id, self.run_id, self.task_id, self.try_number = "flights_retraining", "asset_triggered__x", task_id, 3
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str) -> dict | None:
        return self.xcoms.get(task_ids)


def test_a_failed_retraining_is_recorded_and_starts_the_cooldown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.drift.policy import retraining_guard
    from flywheel.orchestration.training import record_failed_retraining

    settings = dataclasses.replace(config.load(), lake=tmp_path / "lake", retrain_cooldown_days=7)
    history.append_record(settings, {"as_of": "2013-01-20", "decision": "promoted", "source": "training",
                                     "version": 1, "champion_before": None, "champion_after": 1})  # fmt: skip
    guard = {"as_of": "2013-02-10", "evidence": {"ds": "2013-02-10", "drift_share": 0.6}}
    ti = _TI("train_and_gate.train_challenger", {"guard": guard})
    monkeypatch.setattr(config, "load", lambda: settings)
    record_failed_retraining({"ti": ti, "exception": RuntimeError("MLflow at http://x:5000 did not answer")})
    last = history.read_history(settings)[-1]
    assert {k: last[k] for k in ("as_of", "decision", "source", "version", "champion_before", "champion_after")} == {
        "as_of": "2013-02-10",
        "decision": "failed",
        "source": "retraining",
        "version": None,
        "champion_before": 1,
        "champion_after": 1,
    }
    assert last["reason"] == (
        "failed: train_and_gate.train_challenger (try 3): RuntimeError: MLflow at http://x:5000 did not answer"
    )
    assert last["run"]["drift_evidence"] == guard["evidence"]

    g = retraining_guard([{"ds": "2013-02-12"}], history.read_history(settings), settings)
    assert not g.should_retrain
    assert g.reason.startswith("skipped: the retraining as of 2013-02-10 failed (failed: train_and_gate.train_challenger")


def test_only_the_retraining_group_records_failures() -> None:
    from airflow.sdk import DAG

    from flywheel.orchestration import alerts
    from flywheel.orchestration import training as t

    for source in ("training", "retraining"):
        with DAG(f"check_{source}", schedule=None) as dag:
            t.train_and_gate("2013-01-16", 12, 1, source=source)
        for task in dag.tasks:
            callbacks = task.on_failure_callback or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert (t.record_failed_retraining in callbacks) == (source == "retraining"), (source, task.task_id)
            gate = [c for c in callbacks if isinstance(c, alerts.GateFailureAlert)]
            assert len(gate) == (task.task_id == "train_and_gate.validate_training_set"), (source, task.task_id)


# --- rollback and the CLI -------------------------------------------------------------------------


def test_rollback_points_champion_back(store: config.Settings, frame: Any) -> None:
    fake = FakeEval({1.0: m(0.70), 2.0: m(0.75)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    _run(store, v2, frame, fake)

    record = rollback(v1, store, "v2 mis-scores EWR evenings", {"as_of": "2013-03-02", "by": "test"})
    assert current_champion(store) == v1
    assert {k: record[k] for k in ("version", "decision", "source", "champion_before", "champion_after")} == {
        "version": v1,
        "decision": "rollback",
        "source": "rollback",
        "champion_before": v2,
        "champion_after": v1,
    }
    assert record["reason"] == "rollback: v2 mis-scores EWR evenings"
    assert read_history(store)[-1] == record
    tags = _tags(store, v1)
    assert tags["rollback.reason"] == "v2 mis-scores EWR evenings"
    assert tags["rollback.champion_before"] == f"v{v2}"
    assert tags["rollback.decided_at"] == "2013-03-02"
    assert tags["promotion.decision"] == "promoted"  # its own promotion record is kept
    assert _tags(store, v2)["rollback.demoted_to"] == f"v{v1}"


def test_rollback_errors(store: config.Settings, frame: Any) -> None:
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, FakeEval({1.0: m(0.7)}))
    with pytest.raises(RegistryError) as info:
        rollback(9, store, "typo", {})
    assert str(info.value) == f"registered model 'flights_delay' has no version 9; its versions: v{v1}"
    with pytest.raises(RegistryError, match=f"flights_delay v{v1} is already the champion"):
        rollback(v1, store, "again", {})
    with pytest.raises(ValueError, match="a rollback needs a reason"):
        rollback(v1, store, "  ", {})
    assert len(read_history(store)) == 1


def test_cli_rollback_and_history(store: config.Settings, frame: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["history"]) == 0
    assert capsys.readouterr().out.startswith("no promotion decisions yet")
    fake = FakeEval({1.0: m(0.70), 2.0: m(0.75)})
    v1 = _new_version(store, frame, c=1.0)
    _run(store, v1, frame, fake)
    v2 = _new_version(store, frame, c=2.0)
    _run(store, v2, frame, fake)

    assert cli(["rollback", "--to-version", str(v1), "--reason", "bad EWR slice"]) == 0
    assert capsys.readouterr().out.strip() == f"champion of flights_delay: v{v2} -> v{v1}"
    assert cli(["champion"]) == 0
    assert capsys.readouterr().out.strip() == f"v{v1}"
    assert cli(["history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ts", "as_of", "version", "decision", "source", "before", "after", "primary", "reason"]
    assert [line.split()[1:5] for line in lines[1:]] == [
        [AS_OF, f"v{v1}", "promoted", "training"],
        [AS_OF, f"v{v2}", "promoted", "training"],
        [AS_OF, f"v{v1}", "rollback", "rollback"],  # dated by the latest day the loop has seen
    ]
    assert lines[-1].endswith("rollback: bad EWR slice")
    assert cli(["history", "--json"]) == 0
    assert [json.loads(x)["decision"] for x in capsys.readouterr().out.splitlines()] == [
        "promoted",
        "promoted",
        "rollback",
    ]
