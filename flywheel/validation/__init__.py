"""Great Expectations gates of the daily loop (no Airflow imports): landing and features.

Names are imported lazily so ``python -m flywheel.validation.suites`` and DAG parsing stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flywheel.validation.gates import (
        GateFailed,
        batched_data_docs,
        get_context,
        validate_features,
        validate_landing,
    )

__all__ = ["GateFailed", "batched_data_docs", "get_context", "validate_features", "validate_landing"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from flywheel.validation import gates

        return getattr(gates, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
