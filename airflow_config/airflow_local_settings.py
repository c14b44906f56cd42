"""Airflow local settings for Flywheel's laptop stack (``make up`` / ``make demo`` put this folder on PYTHONPATH).

Warm task start: the LocalExecutor forks each task process from the scheduler on Linux, so
libraries the scheduler imported once are already in every task process. Importing the heavy
task libraries here saves several seconds per task (great_expectations, mlflow and evidently
each take seconds to import on a 2-core machine). Celery workers (the cluster profile) fork their
tasks too and preload the same way. Only the process that forks tasks does it, and only when
``FLYWHEEL_PRELOAD`` is set: DAG parsing (the dag-processor) stays light, as the DAG integrity
tests require. Libraries that are not fork-safe (the gRPC client of Spark Connect) are not preloaded.
The switch is a Flywheel setting (``Settings.preload``, read in :mod:`flywheel.config`); the
executor is Airflow's own configuration.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from airflow.configuration import conf

PRELOAD = (
    "pandas",
    "pyarrow.parquet",
    "great_expectations",
    "sklearn.ensemble",
    "sklearn.calibration",
    "optuna",
    "mlflow",
    "mlflow.sklearn",
    "evidently",
)


def _forks_tasks() -> bool:
    """This process forks the task processes: the scheduler of a LocalExecutor, or a Celery worker
    (the cluster profile; its pool processes fork the tasks)."""
    if len(sys.argv) < 2 or os.path.basename(sys.argv[0]) != "airflow":
        return False
    if sys.argv[1] == "scheduler":
        return conf.get("core", "executor", fallback="LocalExecutor") == "LocalExecutor"
    return sys.argv[1:3] == ["celery", "worker"]


def _preload_on() -> bool:
    from flywheel import config

    return config.load().preload


if _forks_tasks() and _preload_on():
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for _name in PRELOAD:
        try:
            importlib.import_module(_name)
        except ImportError as exc:  # a missing optional library only costs speed, never correctness
            logging.getLogger(__name__).warning("flywheel preload: %s not imported: %s", _name, exc)
