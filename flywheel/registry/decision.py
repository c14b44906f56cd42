"""The champion/challenger gate as a pure function of two metric dicts and the settings.

Metric dicts are what ``flywheel.training.model.evaluate`` returns: overall metrics
(``roc_auc``, ``pr_auc``, ...), per-slice metrics ``<metric>__<dimension>__<value>``
(``roc_auc__carrier__UA``, ``roc_auc__origin__JFK``) and per-slice row counts
``rows__<dimension>__<value>`` (``rows__carrier__UA``).

Rules, checked in this order (the reason names the first failing check with its numbers):

1. floor: the challenger's primary metric is at least ``promotion_floor`` (the first model only needs this);
2. margin: it is at least the champion's primary metric plus ``promotion_margin``;
3. slices: on every carrier/origin slice present in both dicts, with at least ``slice_min_rows``
   rows in the challenger's holdout, the challenger's slice metric is at least the champion's
   minus ``slice_tolerance``. A slice whose metric is undefined (NaN, e.g. one class only) is skipped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flywheel.config import Settings

SLICE_DIMENSIONS = ("carrier", "origin")
COUNT_PREFIX = "rows"
# Thresholds are sums of floats (0.705 + 0.002 = 0.7070000000000001): a tie must count as a pass.
_EPS = 1e-9


def slice_key(metric: str, dimension: str, value: str) -> str:
    """``roc_auc``, ``carrier``, ``UA`` -> ``roc_auc__carrier__UA``."""
    return f"{metric}__{dimension}__{value}"


def slice_count_key(dimension: str, value: str) -> str:
    """The row count of a slice: ``carrier``, ``UA`` -> ``rows__carrier__UA``."""
    return slice_key(COUNT_PREFIX, dimension, value)


def slices(metrics: dict[str, float], metric: str) -> dict[tuple[str, str], float]:
    """The ``metric`` slices of a metrics dict, keyed by (dimension, value), in sorted order."""
    out: dict[tuple[str, str], float] = {}
    for key in sorted(metrics):
        parts = key.split("__", 2)
        if len(parts) == 3 and parts[0] == metric and parts[1] in SLICE_DIMENSIONS:
            out[(parts[1], parts[2])] = float(metrics[key])
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True)
class Decision:
    """The gate's verdict, with every check it made (name, value, threshold, passed)."""

    promote: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    primary_metric: str = ""
    challenger_primary: float = math.nan
    champion_primary: float | None = None

    @property
    def decision(self) -> str:
        return "promoted" if self.promote else "rejected"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decision": self.decision}


def _primary(metrics: dict[str, float], metric: str, whose: str) -> float:
    if metric not in metrics:
        raise KeyError(f"the {whose}'s metrics lack the primary metric {metric!r}; they hold {sorted(metrics)[:12]}")
    value = float(metrics[metric])
    if math.isnan(value):
        raise ValueError(f"the {whose}'s primary metric {metric} is NaN: the holdout cannot rank the models")
    return value


def decide_promotion(challenger: dict[str, float], champion: dict[str, float] | None, settings: Settings) -> Decision:
    """Promote the challenger or not, by the floor, margin and slice rules (see the module docstring)."""
    metric = settings.primary_metric
    ours = _primary(challenger, metric, "challenger")
    theirs = _primary(champion, metric, "champion") if champion is not None else None
    checks: list[dict[str, Any]] = []
    failures: list[str] = []

    floor_ok = ours >= settings.promotion_floor - _EPS
    checks.append({"name": "floor", "value": ours, "threshold": settings.promotion_floor, "passed": floor_ok})
    if not floor_ok:
        failures.append(f"{metric} {_fmt(ours)} < floor {_fmt(settings.promotion_floor)}")

    if champion is None or theirs is None:
        if floor_ok:
            reason = f"promoted: first model, {metric} {_fmt(ours)} >= floor {_fmt(settings.promotion_floor)}"
            return Decision(True, reason, checks, metric, ours, None)
        return Decision(False, f"rejected: first model, {failures[0]}", checks, metric, ours, None)

    needed = theirs + settings.promotion_margin
    margin_ok = ours >= needed - _EPS
    checks.append({"name": "margin", "value": ours, "threshold": needed, "passed": margin_ok})
    if not margin_ok:
        failures.append(f"{metric} {_fmt(ours)} < champion {_fmt(theirs)} + margin {_fmt(settings.promotion_margin)}")

    champion_slices = slices(champion, metric)
    compared = 0
    for (dim, value), ours_slice in slices(challenger, metric).items():
        if (dim, value) not in champion_slices:
            continue
        rows = challenger.get(slice_count_key(dim, value))
        if rows is None or rows < settings.slice_min_rows:
            continue
        theirs_slice = champion_slices[(dim, value)]
        if math.isnan(ours_slice) or math.isnan(theirs_slice):
            continue
        compared += 1
        key = slice_key(metric, dim, value)
        floor = theirs_slice - settings.slice_tolerance
        ok = ours_slice >= floor - _EPS
        checks.append(
            {"name": f"slice:{key}", "value": ours_slice, "threshold": floor, "passed": ok, "rows": int(rows)}
        )
        if not ok:
            failures.append(
                f"{key} {_fmt(ours_slice)} < champion {_fmt(theirs_slice)} - tolerance "
                f"{_fmt(settings.slice_tolerance)} (n={int(rows)})"
            )

    if failures:
        reason = f"rejected: {failures[0]}"
        if len(failures) > 1:
            reason += f"; {len(failures) - 1} more failing: " + "; ".join(failures[1:])
        return Decision(False, reason, checks, metric, ours, theirs)
    reason = (
        f"promoted: {metric} {_fmt(ours)} >= champion {_fmt(theirs)} + margin {_fmt(settings.promotion_margin)}; "
        f"{compared} slices with >= {settings.slice_min_rows} rows within tolerance {_fmt(settings.slice_tolerance)}"
    )
    return Decision(True, reason, checks, metric, ours, theirs)
