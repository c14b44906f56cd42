"""The build_features pod and SparkApplication, rendered offline and validated (Kubernetes schemas
of kubernetes-validate, strict: an unknown field fails), and the DAG wiring for each FLYWHEEL_K8S_SPARK."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest

from flywheel.orchestration import kubernetes as kub
from tests.deploy import render
from tests.deploy.helpers import K8S_VERSION, REPO, k8s_validator

LAKE = render.WORKER_ENV["FLYWHEEL_LAKE"]


@pytest.fixture(scope="module")
def pod() -> dict:
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    with render.worker_env(FLYWHEEL_K8S_SPARK="pod"):
        operator = kub.spark_pod(task_id="build_features", arguments=render.ARGUMENTS)
        return PodGenerator.serialize_pod(operator.build_pod_request_obj(dry_run=True))


def test_pod_validates_strictly(pod):
    assert kubernetes_validate.validate(pod, K8S_VERSION, strict=True) == "1.37"


@pytest.mark.parametrize(
    "break_it",
    [
        lambda p: p["spec"]["containers"][0].update(securityContexts={}),  # unknown field
        lambda p: p["spec"]["containers"][0]["resources"].update(limit={"cpu": "1"}),
        lambda p: p["spec"]["volumes"][0].update(persistentVolumeClaim={"name": "flywheel-lake"}),  # claimName missing
    ],
)
def test_a_broken_pod_fails_validation(pod, break_it):
    broken = copy.deepcopy(pod)
    break_it(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_pod_runs_the_feature_job_in_the_flywheel_image(pod):
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "flywheel:0.1.0"
    assert container["command"] == ["spark-submit"]
    assert container["args"] == render.ARGUMENTS  # the days: Jinja rendered by Airflow at run time
    assert pod["metadata"]["namespace"] == "flywheel"
    assert pod["spec"]["serviceAccountName"] == "flywheel-spark"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert container["resources"] == {"requests": kub.POD_REQUESTS, "limits": kub.POD_LIMITS}


def test_pod_is_non_root_without_privileges(pod):
    spec, (container,) = pod["spec"], pod["spec"]["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 50000
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["readOnlyRootFilesystem"] is True
    # ...so everything it writes is the lake or the scratch emptyDir
    assert {m["mountPath"] for m in container["volumeMounts"]} == {LAKE, kub.SCRATCH}


def test_pod_mounts_the_lake_claim_at_flywheel_lake(pod):
    (container,) = pod["spec"]["containers"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (lake,) = [m for m in container["volumeMounts"] if m["mountPath"] == LAKE]
    assert volumes[lake["name"]]["persistentVolumeClaim"] == {"claimName": "flywheel-lake"}
    assert "readOnly" not in lake  # the job publishes partitions into it
    assert "emptyDir" in volumes[kub.SCRATCH_VOLUME]


def test_pod_env_settings_configmap_and_mlflow_secret(pod):
    (container,) = pod["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "flywheel-settings"}}]
    env = {e["name"]: e for e in container["env"]}
    for name in ("FLYWHEEL_LAKE", "MLFLOW_TRACKING_URI", "SPARK_REMOTE", "FLYWHEEL_PROFILE"):
        assert env[name]["value"] == render.WORKER_ENV[name]
    assert env["FLYWHEEL_EXECUTION"]["value"] == "local"  # the job itself runs in-process
    assert env["FLYWHEEL_HOME"]["value"] == kub.SCRATCH  # the scratch emptyDir, not the image
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "flywheel-mlflow", "key": key, "optional": True}
        assert "value" not in env[key]


@pytest.fixture(scope="module")
def spark_app() -> dict:
    return render.spark_application()


def test_spark_application_template_is_current(spark_app):
    assert render.SPARK_APPLICATION.read_text() == render.spark_application_text(), (
        "docker/k8s/spark-application.yaml is stale: run `python -m tests.deploy.render`"
    )


def test_spark_application_runs_the_feature_job(spark_app):
    assert spark_app["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and spark_app["kind"] == "SparkApplication"
    spec = spark_app["spec"]
    assert spec["type"] == "Python" and spec["mode"] == "cluster" and spec["image"] == "flywheel:0.1.0"
    assert spec["mainApplicationFile"] == "local:///opt/flywheel/spark_jobs/build_features.py"
    assert spec["arguments"] == render.ARGUMENTS[1:]
    assert spec["driver"]["serviceAccount"] == "flywheel-spark"
    assert spec["executor"]["instances"] >= 1
    for role in ("driver", "executor"):
        side = spec[role]
        assert side["cores"] and side["memory"] and side["coreLimit"]
        assert side["securityContext"]["allowPrivilegeEscalation"] is False
        assert side["podSecurityContext"]["runAsNonRoot"] is True
        assert {"name": "lake", "mountPath": LAKE} in side["volumeMounts"]
        env = {e["name"]: e.get("value") for e in side["env"]}
        assert env["SPARK_REMOTE"] == ""  # the operator's Spark, not the Connect server of the ConfigMap
        assert env["FLYWHEEL_SPARK_MASTER"].startswith("k8s://")


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("volumes", "io.k8s.api.core.v1.Volume"),
        ("driver.volumeMounts", "io.k8s.api.core.v1.VolumeMount"),
        ("driver.env", "io.k8s.api.core.v1.EnvVar"),
        ("driver.envFrom", "io.k8s.api.core.v1.EnvFromSource"),
        ("executor.volumeMounts", "io.k8s.api.core.v1.VolumeMount"),
        ("executor.env", "io.k8s.api.core.v1.EnvVar"),
    ],
)
def test_spark_application_core_parts_validate(spark_app, field, kind):
    # The CRD's own schema is not vendored; its embedded core types are checked strictly.
    value = spark_app["spec"]
    for part in field.split("."):
        value = value[part]
    validator = k8s_validator(kind, array=True)
    validator.validate(value)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate([{**value[0], "mountpath": "/x"}])  # strict: an unknown field fails


def test_spark_application_security_contexts_validate(spark_app):
    for role in ("driver", "executor"):
        side = spark_app["spec"][role]
        k8s_validator("io.k8s.api.core.v1.SecurityContext").validate(side["securityContext"])
        k8s_validator("io.k8s.api.core.v1.PodSecurityContext").validate(side["podSecurityContext"])


# The flights_features DAG file parsed in a fresh interpreter (no network), as in tests/dags/test_integrity.py.
# Each mode parses the file anew (DagBag imports it under a fresh module name; settings are read then).
_PARSE = r"""
import json, os, socket, sys
def forbid(*a, **k):
    raise RuntimeError("DAG parsing touched the network")
socket.socket.connect = forbid
from airflow.dag_processing.dagbag import DagBag
out = {}
for mode in ("pod", "spark-operator"):
    os.environ["FLYWHEEL_K8S_SPARK"] = mode
    bag = DagBag(sys.argv[1])
    task = bag.dags["flights_features"].get_task("build_features")
    out[mode] = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "class": type(task).__name__,
                 "queue": task.queue, "upstream": sorted(task.upstream_task_ids)}
out["heavy"] = sorted({"pyspark", "pandas", "mlflow"} & {m.split(".")[0] for m in sys.modules})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), **render.WORKER_ENV)
    out = subprocess.run(
        [sys.executable, "-c", _PARSE, str(REPO / "dags" / "flights_features.py")],
        env=env, capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("mode", "operator"), [("pod", "KubernetesPodOperator"), ("spark-operator", "SparkKubernetesOperator")]
)
def test_features_dag_uses_the_operator_of_the_mode(parsed, mode, operator):
    assert parsed[mode]["errors"] == {}
    assert parsed[mode]["class"] == operator
    assert parsed[mode]["queue"] == "spark"
    assert parsed[mode]["upstream"] == ["wait_for_history"]


def test_kubernetes_dag_parse_imports_no_heavy_library(parsed):
    assert parsed["heavy"] == []
