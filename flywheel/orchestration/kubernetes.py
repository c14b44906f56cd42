"""Kubernetes execution: the Spark step in pods of the Flywheel image.

Used when ``FLYWHEEL_EXECUTION=kubernetes``. ``FLYWHEEL_K8S_SPARK`` picks the form:

- ``pod`` (default): a ``KubernetesPodOperator`` running ``spark-submit spark_jobs/build_features.py ...``;
  the job is a Spark Connect client when ``SPARK_REMOTE`` is set (the Spark cluster of docker/k8s), else a
  local Spark inside the pod.
- ``spark-operator``: a ``SparkKubernetesOperator`` submitting a ``SparkApplication``
  (sparkoperator.k8s.io/v1beta2) to the Spark operator, driver and executors in pods of the same image.

Either way the pods mount the lake PersistentVolumeClaim (``FLYWHEEL_K8S_LAKE_CLAIM``) at the
``FLYWHEEL_LAKE`` path of this (the worker's) environment, read the Flywheel settings from the
``flywheel-settings`` ConfigMap plus the forwarded values below, run as uid 50000 without privileges,
and go to the Celery ``spark`` queue. The objects are rendered and validated offline in tests/deploy/;
docker/README.md says what was never run.

Parse-time cost: the provider and ``kubernetes`` client are imported inside the factories only.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from flywheel import config

# Names shared with docker/k8s/ and docker/helm/values.yaml (tests/deploy checks they agree).
SETTINGS_CONFIGMAP = "flywheel-settings"
# Optional Secret with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (an MLflow server with auth).
MLFLOW_SECRET = "flywheel-mlflow"
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# The job pods' identity: no Kubernetes API rights in `pod` mode; the driver's in `spark-operator` mode.
SPARK_SERVICE_ACCOUNT = "flywheel-spark"
SPARK_QUEUE = "spark"
# The image's user (docker/Dockerfile), as in the official Airflow image; gid 0 for OpenShift-style volumes.
RUN_AS_USER = 50000
RUN_AS_GROUP = 0
# Where docker/Dockerfile puts the repository (the working directory of every container).
IMAGE_REPO = "/opt/flywheel"
LAKE_VOLUME = "lake"
SCRATCH_VOLUME = "scratch"
# The root filesystem is read-only; a job writes only the lake and this emptyDir (Spark local dirs,
# Derby, its FLYWHEEL_HOME, HOME).
SCRATCH = "/tmp"
SCRATCH_LIMIT = "4Gi"
# One day of features is ~1,000 rows: a small driver is plenty; limits keep a runaway job off the node.
POD_REQUESTS = {"cpu": "500m", "memory": "1536Mi"}
POD_LIMITS = {"cpu": "2", "memory": "3Gi"}
SPARK_DRIVER = {"cores": 1, "coreLimit": "1000m", "memory": "1g"}
SPARK_EXECUTOR = {"instances": 2, "cores": 1, "coreLimit": "1000m", "memory": "1g"}

# Settings a pod needs to find the lake, MLflow and Spark; values come from this environment and win over
# the ConfigMap's (env beats envFrom), so a pod sees what the in-process task would have seen.
FORWARDED_ENV = (
    "FLYWHEEL_LAKE",
    "FLYWHEEL_SOURCE",
    "FLYWHEEL_PROFILE",
    "MLFLOW_TRACKING_URI",
    "SPARK_REMOTE",
    "FLYWHEEL_SPARK_MASTER",
)


# Inside a SparkApplication the job must use the operator's Spark (master k8s://, executors in pods),
# not the Spark Connect server or the standalone master a worker's settings name.
IN_CLUSTER_MASTER = "k8s://https://kubernetes.default.svc"


def env(settings: config.Settings, spark_operator: bool = False) -> list[dict[str, Any]]:
    """The job container's env: forwarded settings, the lake path, scratch paths, MLflow credentials."""
    values = config.env_values(FORWARDED_ENV)
    if spark_operator:
        values.update(SPARK_REMOTE="", FLYWHEEL_SPARK_MASTER=IN_CLUSTER_MASTER)  # "" beats the ConfigMap's
    values.update(
        FLYWHEEL_LAKE=str(settings.lake),
        FLYWHEEL_EXECUTION="local",  # inside the pod the job runs in-process
        # The pod's run state (Spark's warehouse and Derby files) lives in its scratch volume, nowhere else.
        FLYWHEEL_HOME=SCRATCH,
        HOME=SCRATCH,
        SPARK_LOCAL_DIRS=SCRATCH,
    )
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(values.items())]
    out += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": MLFLOW_SECRET, "key": key, "optional": True}}}
        for key in MLFLOW_SECRET_KEYS
    ]
    return out


def env_from() -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": SETTINGS_CONFIGMAP}}]


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "fsGroup": RUN_AS_GROUP,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def volumes(settings: config.Settings) -> list[dict[str, Any]]:
    return [
        {"name": LAKE_VOLUME, "persistentVolumeClaim": {"claimName": settings.k8s_lake_claim}},
        {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": SCRATCH_LIMIT}},
    ]


def volume_mounts(settings: config.Settings) -> list[dict[str, Any]]:
    return [
        {"name": LAKE_VOLUME, "mountPath": str(settings.lake)},
        {"name": SCRATCH_VOLUME, "mountPath": SCRATCH},
    ]


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "flywheel", "app.kubernetes.io/component": component}


def spark_pod(task_id: str, arguments: list[str], **kwargs: Any) -> Any:
    """The Spark step (``arguments``: ``spark_jobs/<job>.py`` and its options) as the operator
    ``FLYWHEEL_K8S_SPARK`` selects: :func:`job_pod` or :func:`spark_application_operator`."""
    if config.load().k8s_spark == "spark-operator":
        return spark_application_operator(task_id, arguments, **kwargs)
    return job_pod(task_id, arguments, **kwargs)


def job_pod(task_id: str, arguments: list[str], **kwargs: Any) -> Any:
    """A KubernetesPodOperator running ``spark-submit <arguments>`` in the Flywheel image."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client import models as k8s

    settings = config.load()
    client = ApiClient(configuration=Configuration())

    def model(data: Any, kind: str) -> Any:
        # Plain dicts (shared with the SparkApplication) to client models, the way the provider's own
        # converters do it (ApiClient's deserializer: no API call, no kube config).
        return client._ApiClient__deserialize(data, kind)

    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        namespace=settings.k8s_namespace,
        image=settings.k8s_image,
        cmds=["spark-submit"],
        arguments=arguments,
        labels=labels("spark-job"),
        env_vars=model(env(settings), "list[V1EnvVar]"),
        env_from=model(env_from(), "list[V1EnvFromSource]"),
        volumes=model(volumes(settings), "list[V1Volume]"),
        volume_mounts=model(volume_mounts(settings), "list[V1VolumeMount]"),
        container_resources=k8s.V1ResourceRequirements(requests=POD_REQUESTS, limits=POD_LIMITS),
        security_context=model(pod_security_context(), "V1PodSecurityContext"),
        container_security_context=model(container_security_context(), "V1SecurityContext"),
        service_account_name=SPARK_SERVICE_ACCOUNT,
        automount_service_account_token=False,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        queue=SPARK_QUEUE,
        **kwargs,
    )


def spark_application(arguments: list[str], name: str = "build-features") -> dict[str, Any]:
    """The SparkApplication (sparkoperator.k8s.io/v1beta2) running ``arguments`` (``spark_jobs/<job>.py``
    and its options) in cluster mode; Jinja in the arguments is rendered by the operator."""
    settings = config.load()
    main, *args = arguments

    def pod(role: dict[str, Any]) -> dict[str, Any]:  # driver and executor: same env, mounts, security
        return {
            **role,
            "labels": labels("spark-job"),
            "env": env(settings, spark_operator=True),
            "envFrom": env_from(),
            "volumeMounts": volume_mounts(settings),
            "podSecurityContext": pod_security_context(),
            "securityContext": container_security_context(),
        }

    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": settings.k8s_namespace, "labels": labels("spark-job")},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": settings.k8s_image,
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": f"local://{IMAGE_REPO}/{main}",
            "arguments": args,
            "sparkVersion": metadata.version("pyspark"),
            "sparkConf": {"spark.local.dir": SCRATCH},
            "restartPolicy": {"type": "Never"},
            "volumes": volumes(settings),
            "driver": {**pod(SPARK_DRIVER), "serviceAccount": SPARK_SERVICE_ACCOUNT},
            "executor": pod(SPARK_EXECUTOR),
        },
    }


def spark_application_operator(task_id: str, arguments: list[str], **kwargs: Any) -> Any:
    """A SparkKubernetesOperator submitting :func:`spark_application` and following its driver."""
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

    settings = config.load()
    name = task_id.replace("_", "-")
    return SparkKubernetesOperator(
        task_id=task_id,
        name=name,
        namespace=settings.k8s_namespace,
        template_spec={"spark": spark_application(arguments, name)},
        get_logs=True,
        delete_on_termination=True,
        queue=SPARK_QUEUE,
        **kwargs,
    )
