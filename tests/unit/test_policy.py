"""flywheel.drift.policy: the day signal, the consecutive-days decision and the retraining guards."""

from __future__ import annotations

import dataclasses

import pytest

from flywheel import config
from flywheel.config import ConfigError
from flywheel.drift.policy import DRIFT, OK, DaySignal, day_signal, decide_drift, retraining_guard

POLICY_ENV = (
    "FLYWHEEL_DRIFT_SHARE",
    "FLYWHEEL_PREDICTION_DRIFT",
    "FLYWHEEL_QUALITY_DROP",
    "FLYWHEEL_DRIFT_CONSECUTIVE_DAYS",
    "FLYWHEEL_RETRAIN_COOLDOWN_DAYS",
    "FLYWHEEL_LABEL_LAG_DAYS",
)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    """Round thresholds, so each case below sits clearly on one side of them."""
    for name in POLICY_ENV:
        monkeypatch.delenv(name, raising=False)
    return dataclasses.replace(
        config.load(),
        drift_share_threshold=0.25,
        prediction_drift_threshold=0.5,
        quality_drop=0.05,
        drift_consecutive_days=2,
        retrain_cooldown_days=7,
        label_lag_days=0,
    )


def metrics(ds: str = "2013-02-10", **overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "ds": ds,
        "champion_version": 3,
        "drift_share": 0.1,
        "n_drifted": 2,
        "drifted_features": ["temp", "dewp"],
        "prediction_drift": 0.2,
        "roc_auc": 0.70,
        "quality_ds": ds,
    }
    return base | overrides


def signal(ds: str, fired: bool, version: int = 3) -> DaySignal:
    return DaySignal(
        ds=ds,
        champion_version=version,
        drift_share=0.5 if fired else 0.0,
        n_drifted=0,
        drifted_features=(),
        prediction_drift=None,
        roc_auc=None,
        champion_holdout_auc=None,
        quality_ds=ds,
        fired=("data_drift",) if fired else (),
        reasons=("data drift: test",) if fired else (),
    )


def row(ds: str, fired: bool, version: int = 3) -> dict[str, object]:
    return {"ds": ds, "signal": fired, "champion_version": version}


# ---- the settings --------------------------------------------------------------------------


def test_policy_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in POLICY_ENV:
        monkeypatch.delenv(name, raising=False)
    s = config.load()
    assert (s.drift_share_threshold, s.prediction_drift_threshold, s.quality_drop) == (0.3, 1.25, 0.05)
    assert (s.drift_consecutive_days, s.retrain_cooldown_days, s.label_lag_days) == (2, 7, 0)


def test_policy_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    values = ("0.4", "0.2", "0.03", "3", "14", "1")
    for name, value in zip(POLICY_ENV, values, strict=True):
        monkeypatch.setenv(name, value)
    s = config.load()
    assert (s.drift_share_threshold, s.prediction_drift_threshold, s.quality_drop) == (0.4, 0.2, 0.03)
    assert (s.drift_consecutive_days, s.retrain_cooldown_days, s.label_lag_days) == (3, 14, 1)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FLYWHEEL_DRIFT_SHARE", "0", "FLYWHEEL_DRIFT_SHARE=0.0"),
        ("FLYWHEEL_DRIFT_SHARE", "1.5", "FLYWHEEL_DRIFT_SHARE=1.5"),
        ("FLYWHEEL_PREDICTION_DRIFT", "-0.1", "FLYWHEEL_PREDICTION_DRIFT=-0.1"),
        ("FLYWHEEL_QUALITY_DROP", "1", "FLYWHEEL_QUALITY_DROP=1.0"),
        ("FLYWHEEL_DRIFT_CONSECUTIVE_DAYS", "0", "FLYWHEEL_DRIFT_CONSECUTIVE_DAYS=0"),
        ("FLYWHEEL_RETRAIN_COOLDOWN_DAYS", "-1", "FLYWHEEL_RETRAIN_COOLDOWN_DAYS=-1"),
        ("FLYWHEEL_LABEL_LAG_DAYS", "-2", "FLYWHEEL_LABEL_LAG_DAYS=-2"),
        ("FLYWHEEL_DRIFT_CONSECUTIVE_DAYS", "two", "is not an integer"),
    ],
)
def test_bad_policy_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        config.load()


# ---- day_signal ----------------------------------------------------------------------------


def test_quiet_day_fires_nothing(settings: config.Settings) -> None:
    s = day_signal(metrics(), 0.72, settings)
    assert s.fired == () and s.reasons == () and s.signal is False
    assert (s.ds, s.champion_version, s.drift_share, s.n_drifted) == ("2013-02-10", 3, 0.1, 2)
    assert (s.prediction_drift, s.roc_auc, s.champion_holdout_auc) == (0.2, 0.70, 0.72)
    assert s.drifted_features == ("temp", "dewp")


def test_drift_share_at_the_threshold_fires(settings: config.Settings) -> None:
    s = day_signal(metrics(drift_share=0.25), 0.72, settings)
    assert s.fired == ("data_drift",)
    assert s.reasons[0].startswith("data drift: 0.250 of the monitored features drifted (threshold 0.25): temp, dewp")
    assert day_signal(metrics(drift_share=0.24), 0.72, settings).fired == ()


def test_prediction_drift_at_the_threshold_fires(settings: config.Settings) -> None:
    assert day_signal(metrics(prediction_drift=0.5), 0.72, settings).fired == ("prediction_drift",)
    assert day_signal(metrics(prediction_drift=0.49), 0.72, settings).fired == ()


def test_quality_drop_beyond_the_allowance_fires(settings: config.Settings) -> None:
    s = day_signal(metrics(roc_auc=0.625), 0.75, settings)  # a drop of 0.125 > 0.05
    assert s.fired == ("quality_drop",)
    assert s.reasons == (
        "quality drop: ROC AUC 0.6250 on 2013-02-10 is 0.1250 below the champion's holdout ROC AUC 0.7500 "
        "(allowed 0.05)",
    )
    # A drop of exactly the allowance (0.75 - 0.6875 = 0.0625 with quality_drop 0.0625) is allowed.
    edge = dataclasses.replace(settings, quality_drop=0.0625)
    assert day_signal(metrics(roc_auc=0.6875), 0.75, edge).fired == ()
    # Better than the holdout never fires.
    assert day_signal(metrics(roc_auc=0.80), 0.75, settings).fired == ()


def test_unknown_quality_never_fires(settings: config.Settings) -> None:
    assert day_signal(metrics(roc_auc=None), 0.75, settings).fired == ()
    assert day_signal(metrics(roc_auc=float("nan")), 0.75, settings).fired == ()
    assert day_signal(metrics(roc_auc=0.5), None, settings).fired == ()


def test_all_three_conditions_in_order(settings: config.Settings) -> None:
    s = day_signal(
        metrics(drift_share=0.6, prediction_drift=0.9, roc_auc=0.6, drifted_features="temp,dewp,humid"), 0.75, settings
    )
    assert s.fired == ("data_drift", "prediction_drift", "quality_drop")
    assert s.drifted_features == ("temp", "dewp", "humid")  # a comma-joined history value is split
    assert len(s.reasons) == 3


# ---- decide_drift --------------------------------------------------------------------------------


def test_one_signalling_day_is_not_drift(settings: config.Settings) -> None:
    d = decide_drift([row("2013-02-09", False)], signal("2013-02-10", True), settings)
    assert (d.decision, d.streak, d.required, d.streak_days) == (OK, 1, 2, ("2013-02-10",))
    assert d.reasons[0] == "ok: 2013-02-10 signals, but only 1 consecutive signalling day(s) of the 2 required"


def test_two_consecutive_signalling_days_are_drift(settings: config.Settings) -> None:
    d = decide_drift([row("2013-02-08", False), row("2013-02-09", True)], signal("2013-02-10", True), settings)
    assert (d.decision, d.streak, d.streak_days) == (DRIFT, 2, ("2013-02-09", "2013-02-10"))
    assert d.is_drift
    assert d.reasons == (
        "drift: 2 consecutive signalling days ending 2013-02-10 (required 2)",
        "data drift: test",
    )
    evidence = d.evidence()
    assert evidence["ds"] == "2013-02-10" and evidence["streak_days"] == ["2013-02-09", "2013-02-10"]
    assert (evidence["decision"], evidence["champion_version"], evidence["fired"]) == ("drift", 3, ["data_drift"])


def test_a_gap_breaks_the_streak(settings: config.Settings) -> None:
    # 02-08 signalled, 02-09 was never monitored: 02-10 starts a new streak.
    d = decide_drift([row("2013-02-08", True)], signal("2013-02-10", True), settings)
    assert (d.decision, d.streak) == (OK, 1)


def test_three_required_days(settings: config.Settings) -> None:
    three = dataclasses.replace(settings, drift_consecutive_days=3)
    history = [row("2013-02-07", True), row("2013-02-08", False), row("2013-02-09", True)]
    assert decide_drift(history, signal("2013-02-10", True), three).streak == 2
    history[1] = row("2013-02-08", True)
    d = decide_drift(history, signal("2013-02-10", True), three)
    # The streak stops counting at the requirement.
    assert (d.decision, d.streak, d.streak_days) == (DRIFT, 3, ("2013-02-08", "2013-02-09", "2013-02-10"))


def test_quiet_day_ends_the_streak(settings: config.Settings) -> None:
    d = decide_drift([row("2013-02-09", True)], signal("2013-02-10", False), settings)
    assert (d.decision, d.streak, d.streak_days, d.reasons) == (OK, 0, (), ("ok: no condition fired on 2013-02-10",))


def test_later_and_same_day_rows_and_other_versions_are_ignored(settings: config.Settings) -> None:
    history = [
        row("2013-02-10", True),  # an earlier run of the same day (a rerun)
        row("2013-02-11", True),  # a later day (monitoring backfilled out of order)
        row("2013-02-09", True, version=2),  # the previous champion
    ]
    assert decide_drift(history, signal("2013-02-10", True), settings).streak == 1


def test_history_values_from_parquet(settings: config.Settings) -> None:
    """Rows read back from the history partitions: numpy bools, float versions, timestamps as ds."""
    import numpy as np
    import pandas as pd

    history = [{"ds": pd.Timestamp("2013-02-09"), "signal": np.bool_(True), "champion_version": np.float64(3.0)}]
    assert decide_drift(history, signal("2013-02-10", True), settings).decision == DRIFT


def test_one_required_day(settings: config.Settings) -> None:
    one = dataclasses.replace(settings, drift_consecutive_days=1)
    assert decide_drift([], signal("2013-02-10", True), one).decision == DRIFT


# ---- retraining_guard ----------------------------------------------------------------------


def promotion(as_of: str, decision: str = "promoted", source: str = "training", version: int = 4) -> dict:
    return {"as_of": as_of, "decision": decision, "source": source, "version": version}


def test_no_event_no_retraining(settings: config.Settings) -> None:
    g = retraining_guard([], [], settings)
    assert (g.should_retrain, g.as_of, g.event_dates) == (False, None, ())
    assert g.reason == "no drift event with a date: nothing to retrain for"


def test_retrain_as_of_the_first_event_outside_the_cooldown(settings: config.Settings) -> None:
    events = [{"ds": "2013-02-10", "drift_share": 0.6}, {"ds": "2013-02-12"}, {"ds": "2013-02-10"}]
    g = retraining_guard(events, [promotion("2013-01-28")], settings)
    assert (g.should_retrain, g.as_of, g.event_dates, g.blocked_by) == (
        True,
        "2013-02-10",
        ("2013-02-10", "2013-02-12"),
        None,
    )
    assert g.reason == (
        "retrain as of 2013-02-10: drift on 2013-02-10, 2013-02-12; no promotion, rollback or retraining in the 7 "
        "days before"
    )


def test_a_range_runs_drift_days_retrain_when_the_cooldown_ends(settings: config.Settings) -> None:
    """One event of a range run of monitoring (02-19..02-25, drift every day) after a retraining as
    of 02-16: the retraining is as of 02-23, the day a daily schedule would have started it."""
    days = [f"2013-02-{d}" for d in range(19, 26)]
    records = [promotion("2013-02-16", decision="rejected", source="retraining", version=2)]
    g = retraining_guard([{"ds": "2013-02-19", "drift_days": days}], records, settings)
    assert (g.should_retrain, g.as_of, g.event_dates) == (True, "2013-02-23", tuple(days))
    assert g.reason.endswith(
        "; the drift dates before it were within the cooldown of the retraining as of 2013-02-16"
    )
    # The same days as seven daily events give the same retraining.
    daily = retraining_guard([{"ds": d} for d in days], records, settings)
    assert (daily.should_retrain, daily.as_of) == (True, "2013-02-23")


def test_cooldown_after_a_promotion(settings: config.Settings) -> None:
    # Promoted 6 days before the drift date: inside a 7-day cooldown.
    g = retraining_guard([{"ds": "2013-02-10"}], [promotion("2013-02-04")], settings)
    assert (g.should_retrain, g.as_of) == (False, "2013-02-10")
    assert g.reason == (
        "skipped: v4 was promoted as of 2013-02-04 (training), within the 7-day cooldown of drift date 2013-02-10; "
        "retraining waits until 2013-02-11"
    )
    assert g.blocked_by == promotion("2013-02-04")
    # 7 days before: the cooldown is over.
    assert retraining_guard([{"ds": "2013-02-11"}], [promotion("2013-02-04")], settings).should_retrain is True


def test_a_rejected_training_does_not_start_a_cooldown(settings: config.Settings) -> None:
    records = [promotion("2013-02-09", decision="rejected")]
    assert retraining_guard([{"ds": "2013-02-10"}], records, settings).should_retrain is True


def test_a_rollback_starts_a_cooldown(settings: config.Settings) -> None:
    records = [promotion("2013-01-20"), promotion("2013-02-05", "rollback", "rollback", version=3)]
    g = retraining_guard([{"ds": "2013-02-10"}], records, settings)
    assert (g.should_retrain, g.as_of, g.blocked_by) == (False, "2013-02-10", records[1])
    assert g.reason == (
        "skipped: the champion was rolled back to v3 as of 2013-02-05, within the 7-day cooldown of drift date "
        "2013-02-10; retraining waits until 2013-02-12"
    )
    later = retraining_guard([{"ds": "2013-02-12"}], records, settings)
    assert (later.should_retrain, later.as_of) == (True, "2013-02-12")


def failed(as_of: str, error: str = "failed: train_and_gate.train_challenger: MlflowUnreachable: down") -> dict:
    return {"as_of": as_of, "decision": "failed", "source": "retraining", "version": None, "reason": error}


def test_a_failed_retraining_starts_a_cooldown_and_says_so(settings: config.Settings) -> None:
    records = [promotion("2013-01-20"), failed("2013-02-08")]
    g = retraining_guard([{"ds": "2013-02-09"}, {"ds": "2013-02-11"}], records, settings)
    assert (g.should_retrain, g.as_of, g.blocked_by) == (False, "2013-02-11", records[1])
    assert g.reason == (
        "skipped: the retraining as of 2013-02-08 failed (failed: train_and_gate.train_challenger: "
        "MlflowUnreachable: down), within the 7-day cooldown of drift date 2013-02-11; a failed retraining "
        "counts like one that ran, so drift does not restart it before 2013-02-15: fix the cause, or retrain "
        "now with flights_training"
    )
    assert retraining_guard([{"ds": "2013-02-15"}], records, settings).should_retrain is True


def test_dedupe_one_retraining_per_cooldown_window(settings: config.Settings) -> None:
    # A retraining ran for drift on 02-10 (and was rejected); a monitoring backfill then emits 02-11 and 02-12.
    records = [promotion("2013-01-28"), promotion("2013-02-10", decision="rejected", source="retraining", version=5)]
    g = retraining_guard([{"ds": "2013-02-11"}, {"ds": "2013-02-12"}], records, settings)
    assert (g.should_retrain, g.as_of, g.event_dates) == (False, "2013-02-12", ("2013-02-11", "2013-02-12"))
    assert g.reason == (
        "skipped: a retraining already ran as of 2013-02-10 (rejected), within the 7-day cooldown of drift date "
        "2013-02-12; drift dates 2013-02-11, 2013-02-12 are covered by it"
    )
    # A week after that retraining, drift retrains again.
    assert retraining_guard([{"ds": "2013-02-17"}], records, settings).should_retrain is True


def test_backfilled_old_drift_does_not_retrain_over_a_newer_model(settings: config.Settings) -> None:
    g = retraining_guard([{"ds": "2013-01-20"}], [promotion("2013-02-10", source="retraining")], settings)
    assert (g.should_retrain, g.as_of) == (False, "2013-01-20")
    assert g.reason.startswith("skipped: a retraining already ran as of 2013-02-10 (promoted)")


def test_zero_cooldown_disables_the_guards(settings: config.Settings) -> None:
    none = dataclasses.replace(settings, retrain_cooldown_days=0)
    g = retraining_guard([{"ds": "2013-02-10"}], [promotion("2013-02-10", source="retraining")], none)
    assert g.should_retrain is True


def test_bad_event_date_is_an_error(settings: config.Settings) -> None:
    from flywheel.lake import LakeError

    with pytest.raises(LakeError, match="'10/02/2013' is not YYYY-MM-DD"):
        retraining_guard([{"ds": "10/02/2013"}], [], settings)
