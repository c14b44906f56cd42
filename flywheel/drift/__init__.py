"""Drift monitoring (:mod:`flywheel.drift.monitor`, Evidently) and the drift/retraining policy
(:mod:`flywheel.drift.policy`, pure). ``python -m flywheel.drift --ds D`` monitors one day."""
