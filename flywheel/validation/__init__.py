"""Great Expectations gates of the daily loop (no Airflow imports): landing and features.

Modules: ``gates`` (what every gate shares, GateFailed), ``landing_gate``, ``features_gate``,
``batch`` (many days in one GX validation), ``data_docs`` (the GX context, results, Data Docs),
``suites`` (the committed suites, generated from code). Names are imported lazily so
``python -m flywheel.validation.suites`` and DAG parsing stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flywheel.validation.data_docs import batched_data_docs, get_context
    from flywheel.validation.features_gate import validate_features, validate_features_days
    from flywheel.validation.gates import GateFailed
    from flywheel.validation.landing_gate import validate_landing, validate_landing_days
    from flywheel.validation.per_day import DaysResult

_MODULES = {
    "DaysResult": "per_day",
    "GateFailed": "gates",
    "batched_data_docs": "data_docs",
    "get_context": "data_docs",
    "validate_features": "features_gate",
    "validate_features_days": "features_gate",
    "validate_landing": "landing_gate",
    "validate_landing_days": "landing_gate",
}
__all__ = [
    "DaysResult",
    "GateFailed",
    "batched_data_docs",
    "get_context",
    "validate_features",
    "validate_features_days",
    "validate_landing",
    "validate_landing_days",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(f"flywheel.validation.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
