"""Drift monitoring and the drift/retraining policy. ``python -m flywheel.drift --ds D`` monitors one day.

- :mod:`flywheel.drift.monitor`: ``monitor_day``, one scored day end to end (composes the modules below);
- :mod:`flywheel.drift.scored_day`: the day's model inputs joined to its predictions;
- :mod:`flywheel.drift.reference`: the champion's reference data and the per-column thresholds;
- :mod:`flywheel.drift.report`: the Evidently report and the drift metrics taken from it;
- :mod:`flywheel.drift.quality`: model quality on labelled days;
- :mod:`flywheel.drift.publish`: ``reports/monitoring/ds=D/`` and the MLflow run ``monitor-D``;
- :mod:`flywheel.drift.daily_log`: the monitoring history, one row per monitored day;
- :mod:`flywheel.drift.policy`: the drift/retraining policy (pure).
"""


class DriftError(RuntimeError):
    """A day cannot be monitored: missing predictions or features, no champion, or no reference."""
