"""Training: the features window as a time-split training set, the tuned and calibrated model, MLflow runs.

Plain Python (no Airflow): the DAGs call :func:`flywheel.training.train.train`, and so does
``python -m flywheel.training --as-of 2013-01-28``.
"""

from flywheel.training.data import TrainingDataError, TrainingSet, assemble, gate_checks

__all__ = ["TrainingDataError", "TrainingSet", "assemble", "gate_checks"]
