"""Airflow assets of the loop. An event's ``extra`` always carries the partition date ``ds``."""

from __future__ import annotations

from airflow.sdk import Asset

# One plain asset per dataset, the partition date in each event's extra (see the README for why
# not Airflow 3.3's partitioned assets yet).
FEATURES = Asset(name="flights_features", uri="file:///flywheel/lake/features/flights", group="flywheel")
PREDICTIONS = Asset(name="flights_predictions", uri="file:///flywheel/lake/predictions/flights", group="flywheel")
# Emitted by flights_monitoring only when the drift policy says "drift"; extra = the evidence.
DRIFT = Asset(name="drift", uri="file:///flywheel/lake/monitoring/drift", group="flywheel")
