"""Import Great Expectations quietly: no analytics, no import-time info logs, no progress bars.

Everything in :mod:`flywheel.validation` imports GX through :func:`import_gx` so the settings
below are in place before GX's first import in the process.
"""

from __future__ import annotations

import logging
from types import ModuleType

from flywheel import config


def import_gx() -> ModuleType:
    # GX logs "Skipping registering function ..." at INFO for hundreds of functions on import,
    # which floods Airflow task logs (Airflow configures the root logger at INFO).
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # No usage statistics (and so no network): the committed config says so too, but the env
    # flag also covers contexts created before the config is read.
    config.env_setdefault(GX_ANALYTICS_ENABLED="false")
    import great_expectations as gx

    return gx
