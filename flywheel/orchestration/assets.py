"""Airflow assets of the loop, the edges of its asset graph: features -> scoring -> predictions ->
monitoring -> drift -> retraining.

Every event carries a partition key (:mod:`flywheel.partition_keys`: the day, or
``first..last`` for a range run), from which the scheduler creates the consumer's run for the same
days (``PartitionedAssetTimetable``); ``extra`` carries the details (``ds`` is the first day)."""

from __future__ import annotations

from airflow.sdk import Asset

from flywheel import catalog

# flights_features emits the key itself (its own runs are scheduled by date, not by partition);
# scoring and monitoring runs carry it on, being partitioned runs.
FEATURES = Asset(name=catalog.FEATURES.asset, uri=catalog.FEATURES.asset_uri, group="flywheel")
PREDICTIONS = Asset(name=catalog.PREDICTIONS.asset, uri=catalog.PREDICTIONS.asset_uri, group="flywheel")
# Emitted by flights_monitoring only when the drift policy says "drift"; extra = the evidence.
DRIFT = Asset(name=catalog.DRIFT_ASSET, uri=catalog.DRIFT_ASSET_URI, group="flywheel")
