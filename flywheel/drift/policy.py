"""The drift policy and the retraining guards: pure functions over numbers, dicts and dates.

A monitored day *signals* when any of three conditions fires (:func:`day_signal`):

``data_drift``        the share of drifted model features is at least ``drift_share_threshold``
``prediction_drift``  the day's P(delayed) distribution is at least ``prediction_drift_threshold``
                      times as far from the champion's reference scores as its unusual training
                      days were (normed Wasserstein distance over its calibrated threshold)
``quality_drop``      the day's ROC AUC is more than ``quality_drop`` below the champion's holdout ROC AUC

The policy says ``"drift"`` (:func:`decide_drift`) only when the day signals and so did each of the
``drift_consecutive_days - 1`` calendar days before it, monitored against the same champion
version: one odd day (a storm, a holiday) is not drift; a gap in the monitoring breaks the streak.

The retraining guards (:func:`retraining_guard`) turn drift events into at most one retraining
per cooldown window. Nothing here imports Evidently, MLflow or Airflow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from flywheel import lake

if TYPE_CHECKING:
    from flywheel.config import Settings

CONDITIONS = ("data_drift", "prediction_drift", "quality_drop")
# History decisions that change the champion, and start a cooldown, by the name a skip reason gives them.
CHAMPION_CHANGES = {"promoted": "promotion", "rollback": "rollback"}
DRIFT = "drift"
OK = "ok"


def _number(value: Any) -> float | None:
    """A finite float, or None for None/NaN/pandas NA (history rows come back from Parquet)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN != NaN


def _version(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


@dataclass(frozen=True)
class DaySignal:
    """What one monitored day measured and which conditions fired."""

    ds: str
    champion_version: int | None
    drift_share: float | None
    n_drifted: int
    drifted_features: tuple[str, ...]
    prediction_drift: float | None
    roc_auc: float | None
    champion_holdout_auc: float | None
    quality_ds: str | None
    fired: tuple[str, ...]  # a subset of CONDITIONS, in that order
    reasons: tuple[str, ...]  # one sentence per fired condition, with the numbers

    @property
    def signal(self) -> bool:
        return bool(self.fired)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "drifted_features": list(self.drifted_features),
            "fired": list(self.fired),
            "reasons": list(self.reasons),
            "signal": self.signal,
        }


@dataclass(frozen=True)
class PolicyDecision:
    """The policy's answer for one day: ``drift`` or ``ok``, the streak, and the evidence."""

    ds: str
    decision: str  # DRIFT | OK
    streak: int  # consecutive signalling days ending at ds (0 when ds does not signal)
    required: int  # settings.drift_consecutive_days
    streak_days: tuple[str, ...]  # the days of the streak, oldest first
    signal: DaySignal
    reasons: tuple[str, ...]

    @property
    def is_drift(self) -> bool:
        return self.decision == DRIFT

    def evidence(self) -> dict[str, Any]:
        """The JSON-able evidence a drift event carries (what the retraining reads and shows)."""
        s = self.signal
        return {
            "ds": self.ds,
            "decision": self.decision,
            "champion_version": s.champion_version,
            "drift_share": s.drift_share,
            "n_drifted": s.n_drifted,
            "drifted_features": list(s.drifted_features),
            "prediction_drift": s.prediction_drift,
            "roc_auc": s.roc_auc,
            "quality_ds": s.quality_ds,
            "champion_holdout_auc": s.champion_holdout_auc,
            "fired": list(s.fired),
            "streak": self.streak,
            "required": self.required,
            "streak_days": list(self.streak_days),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class GuardDecision:
    """Whether drift events lead to a retraining now, as of which date, and why (not)."""

    should_retrain: bool
    as_of: str | None  # the latest drift date: the retraining's as-of date
    reason: str
    event_dates: tuple[str, ...]  # the distinct drift dates of the events, oldest first
    blocked_by: dict[str, Any] | None = field(default=None)  # the promotion history record that blocked it

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "event_dates": list(self.event_dates)}


def day_signal(metrics: Mapping[str, Any], champion_holdout_auc: float | None, settings: Settings) -> DaySignal:
    """Which of the three conditions fire on one monitored day.

    ``metrics`` holds ``ds``, ``champion_version``, ``drift_share``, ``n_drifted``,
    ``drifted_features`` (list or comma-joined string), ``prediction_drift`` and ``roc_auc``
    (None when the day's quality could not be measured), optionally ``quality_ds``.
    A missing number never fires its condition.
    """
    share = _number(metrics.get("drift_share"))
    pred = _number(metrics.get("prediction_drift"))
    auc = _number(metrics.get("roc_auc"))
    holdout = _number(champion_holdout_auc)
    drifted = metrics.get("drifted_features") or ()
    if isinstance(drifted, str):
        drifted = [f for f in drifted.split(",") if f]
    drifted = tuple(drifted)
    fired: list[str] = []
    reasons: list[str] = []
    if share is not None and share >= settings.drift_share_threshold:
        fired.append("data_drift")
        shown = ", ".join(drifted[:8]) + (", ..." if len(drifted) > 8 else "")
        reasons.append(
            f"data drift: {share:.3f} of the monitored features drifted (threshold {settings.drift_share_threshold}): "
            f"{shown}"
        )
    if pred is not None and pred >= settings.prediction_drift_threshold:
        fired.append("prediction_drift")
        reasons.append(
            f"prediction drift: P(delayed) moved {pred:.2f} times the champion's baseline distance from its "
            f"reference scores (threshold {settings.prediction_drift_threshold})"
        )
    if auc is not None and holdout is not None and holdout - auc > settings.quality_drop:
        fired.append("quality_drop")
        reasons.append(
            f"quality drop: ROC AUC {auc:.4f} on {metrics.get('quality_ds') or metrics.get('ds')} is "
            f"{holdout - auc:.4f} below the champion's holdout ROC AUC {holdout:.4f} (allowed {settings.quality_drop})"
        )
    return DaySignal(
        ds=lake.parse_ds(metrics["ds"]).isoformat(),
        champion_version=_version(metrics.get("champion_version")),
        drift_share=share,
        n_drifted=int(_number(metrics.get("n_drifted")) or len(drifted)),
        drifted_features=drifted,
        prediction_drift=pred,
        roc_auc=auc,
        champion_holdout_auc=holdout,
        quality_ds=metrics.get("quality_ds"),
        fired=tuple(fired),
        reasons=tuple(reasons),
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return _number(value) not in (None, 0.0)


def decide_drift(history_rows: Iterable[Mapping[str, Any]], today: DaySignal, settings: Settings) -> PolicyDecision:
    """``drift`` iff today and the ``drift_consecutive_days - 1`` calendar days before it all signalled.

    ``history_rows`` are earlier monitoring history rows (``ds``, ``signal``, ``champion_version``);
    rows on or after today's date are ignored (a rerun or a backfill of an earlier day), and so are
    rows of another champion version (a new champion starts a new streak).
    """
    day = lake.parse_ds(today.ds)
    signalled: set[dt.date] = set()
    for row in history_rows:
        row_day = lake.parse_ds(str(row["ds"])[:10])
        if row_day >= day or not _truthy(row.get("signal")):
            continue
        row_version = _version(row.get("champion_version"))
        if today.champion_version is not None and row_version is not None and row_version != today.champion_version:
            continue
        signalled.add(row_day)

    streak_days: list[dt.date] = []
    if today.signal:
        streak_days.append(day)
        previous = day - dt.timedelta(days=1)
        # Counting stops at the requirement: an older streak adds no evidence.
        while previous in signalled and len(streak_days) < settings.drift_consecutive_days:
            streak_days.append(previous)
            previous -= dt.timedelta(days=1)
    streak = len(streak_days)
    required = settings.drift_consecutive_days
    if streak >= required:
        decision = DRIFT
        reasons = (f"drift: {streak} consecutive signalling days ending {day} (required {required})", *today.reasons)
    elif today.signal:
        decision = OK
        reasons = (
            f"ok: {day} signals, but only {streak} consecutive signalling day(s) of the {required} required",
            *today.reasons,
        )
    else:
        decision = OK
        reasons = (f"ok: no condition fired on {day}",)
    return PolicyDecision(
        ds=day.isoformat(),
        decision=decision,
        streak=streak,
        required=required,
        streak_days=tuple(d.isoformat() for d in sorted(streak_days)),
        signal=today,
        reasons=reasons,
    )


def retraining_guard(
    events: Iterable[Mapping[str, Any]], promotions: Iterable[Mapping[str, Any]], settings: Settings
) -> GuardDecision:
    """One retraining per cooldown window, as of the first drift date of ``events`` outside the cooldown.

    ``events`` are drift events' extras (each with ``ds``, and ``drift_days`` when a range run of
    flights_monitoring found several); ``promotions`` are promotion history records (``as_of``,
    ``decision``, ``source``). A drift date is inside the cooldown when, within
    ``retrain_cooldown_days`` before it (or on/after it: a monitoring backfill of old days must not
    retrain over a newer model),

    - a retraining already ran (``source == "retraining"``: promoted, rejected or failed): dedupe;
      a failed retraining counts too, so the same failing retraining is not restarted by every
      drift event (fix the cause, then retrain by hand with flights_training), or
    - a model was promoted (``decision == "promoted"``, any source) or the champion was rolled back
      (``decision == "rollback"``): the new (or restored) champion gets time.

    The retraining is as of the first drift date outside the cooldown: the day on which a daily
    schedule, one event at a time, would have started it. One run of flights_retraining retrains at
    most once: later dates of the same events are not retrained for separately (a range of monitoring
    longer than the cooldown gives one retraining where daily runs could give several). When every
    date is inside, the retraining is skipped with the reason (for the latest date).
    """
    dates = sorted(
        {
            lake.parse_ds(str(d)[:10])
            for e in events
            for d in [e.get("ds"), *(e.get("drift_days") or [])]
            if d
        }
    )
    event_dates = tuple(d.isoformat() for d in dates)
    if not dates:
        return GuardDecision(False, None, "no drift event with a date: nothing to retrain for", event_dates)
    cooldown = settings.retrain_cooldown_days
    records = list(promotions)

    def blocker(day: dt.date) -> tuple[str, dt.date, Mapping[str, Any]] | None:
        """Why ``day`` is inside a cooldown: the latest retraining, else the latest promotion, in its window."""
        if cooldown <= 0:
            return None
        # Inside the window: day - record date < cooldown days (later records included).
        window_start = day - dt.timedelta(days=cooldown - 1)

        def in_window(record: Mapping[str, Any]) -> dt.date | None:
            raw = record.get("as_of")
            when = lake.parse_ds(str(raw)[:10]) if raw else None
            return when if when is not None and when >= window_start else None

        retrainings = [(d, r) for r in records if r.get("source") == "retraining" and (d := in_window(r))]
        if retrainings:
            return ("retraining", *max(retrainings, key=lambda dr: dr[0]))
        changed = [(d, r) for r in records if r.get("decision") in CHAMPION_CHANGES and (d := in_window(r))]
        if changed:
            day_, record = max(changed, key=lambda dr: dr[0])
            return (CHAMPION_CHANGES[record["decision"]], day_, record)
        return None

    blocked: dict[dt.date, tuple[str, dt.date, Mapping[str, Any]]] = {}
    for day in dates:
        why = blocker(day)
        if why is None:
            earlier = [d for d in dates if d < day]
            covered = (
                f"; the drift dates before it were within the cooldown of the {blocked[earlier[-1]][0]} as of "
                f"{blocked[earlier[-1]][1]}"
                if earlier
                else ""
            )
            return GuardDecision(
                True,
                day.isoformat(),
                f"retrain as of {day}: drift on {', '.join(event_dates)}; no promotion, rollback or retraining "
                f"in the {cooldown} days before{covered}",
                event_dates,
            )
        blocked[day] = why
    as_of = dates[-1]
    kind, when, record = blocked[as_of]
    until = when + dt.timedelta(days=cooldown)
    if kind == "retraining" and record.get("decision") == "failed":
        error = str(record.get("reason") or "no error recorded")
        reason = (
            f"skipped: the retraining as of {when} failed ({error[:300]}), within the {cooldown}-day cooldown of "
            f"drift date {as_of}; a failed retraining counts like one that ran, so drift does not restart it "
            f"before {until}: fix the cause, or retrain now with flights_training"
        )
    elif kind == "retraining":
        reason = (
            f"skipped: a retraining already ran as of {when} ({record.get('decision')}), within the "
            f"{cooldown}-day cooldown of drift date {as_of}; drift dates {', '.join(event_dates)} are covered by it"
        )
    elif kind == "rollback":
        reason = (
            f"skipped: the champion was rolled back to v{record.get('version')} as of {when}, within the "
            f"{cooldown}-day cooldown of drift date {as_of}; retraining waits until {until}"
        )
    else:
        reason = (
            f"skipped: v{record.get('version')} was promoted as of {when} ({record.get('source')}), within the "
            f"{cooldown}-day cooldown of drift date {as_of}; retraining waits until {until}"
        )
    return GuardDecision(False, as_of.isoformat(), reason, event_dates, dict(record))
