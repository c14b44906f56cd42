"""Kubernetes execution: the same CLIs, each in a pod of the Flywheel image.

Used when ``FLYWHEEL_EXECUTION=kubernetes``. The pod gets the Flywheel settings of the
scheduler's environment (lake, MLflow, Spark master or Spark Connect URL), so a job reads and
writes the same lake as the in-process tasks would. The lake must be a volume both can reach.
"""

from __future__ import annotations

import os
from typing import Any

from flywheel import config

# Settings a pod needs to find the lake, MLflow and Spark; values come from this environment.
FORWARDED_ENV = (
    "FLYWHEEL_LAKE",
    "FLYWHEEL_SOURCE",
    "MLFLOW_TRACKING_URI",
    "SPARK_REMOTE",
    "FLYWHEEL_SPARK_MASTER",
)


def spark_pod(task_id: str, arguments: list[str], **kwargs: Any) -> Any:
    """A KubernetesPodOperator running ``spark-submit <arguments>`` in the Flywheel image."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    settings = config.load()
    env = [k8s.V1EnvVar(name=name, value=os.environ[name]) for name in FORWARDED_ENV if os.environ.get(name)]
    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        namespace=settings.k8s_namespace,
        image=settings.k8s_image,
        cmds=["spark-submit"],
        arguments=arguments,
        env_vars=env,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        **kwargs,
    )
