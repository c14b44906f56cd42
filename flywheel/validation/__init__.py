"""Great Expectations gates of the daily loop (no Airflow imports): landing and features."""

from flywheel.validation.gates import GateFailed, get_context, validate_features, validate_landing

__all__ = ["GateFailed", "get_context", "validate_features", "validate_landing"]
