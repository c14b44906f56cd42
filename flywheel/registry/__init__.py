"""The model registry side of the loop: the champion/challenger gate, promotion, rollback, history.

Aliases only (``champion``, ``challenger`` on the registered model ``settings.model_name``);
registry stages are deprecated and never used. Importing this package imports no MLflow:
MLflow is imported inside the functions that talk to it.
"""

from __future__ import annotations

from flywheel.registry.client import CHALLENGER, CHAMPION, THRESHOLD_TAG, RegistryError
from flywheel.registry.decision import Decision, decide_promotion, slice_count_key, slice_key
from flywheel.registry.history import append_record, current_champion, history_path, read_history
from flywheel.registry.lock import RegistryLockTimeout, registry_lock
from flywheel.registry.promotion import evaluate_challenger, promote_or_reject, rollback

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "THRESHOLD_TAG",
    "Decision",
    "RegistryError",
    "RegistryLockTimeout",
    "append_record",
    "current_champion",
    "decide_promotion",
    "evaluate_challenger",
    "history_path",
    "promote_or_reject",
    "read_history",
    "registry_lock",
    "rollback",
    "slice_count_key",
    "slice_key",
]
