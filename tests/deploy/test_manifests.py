"""Every core Kubernetes object in docker/k8s/ validates strictly, and the names agree with the code."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from flywheel import config
from flywheel.orchestration import kubernetes as kub
from tests.deploy.helpers import DOCKER, K8S_VERSION, yaml_docs

CORE = [
    (path.name, doc)
    for path in sorted((DOCKER / "k8s").glob("*.yaml"))
    for doc in yaml_docs(path)
    if not doc["apiVersion"].startswith("sparkoperator.k8s.io/")  # a CRD: tests/deploy/test_pod.py
]
BY_KIND = {(d["kind"], d["metadata"]["name"]): d for _, d in CORE}


def _id(item):
    name, doc = item
    return f"{name}:{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("item", CORE, ids=[_id(i) for i in CORE])
def test_object_validates_strictly(item):
    _, doc = item
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_object_fails():
    deployment = copy.deepcopy(BY_KIND[("Deployment", "mlflow")])
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    service = copy.deepcopy(BY_KIND[("Service", "mlflow")])
    service["spec"]["ports"][0]["port"] = "five thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)


def test_what_ships(monkeypatch):
    for name in ("FLYWHEEL_K8S_NAMESPACE", "FLYWHEEL_K8S_LAKE_CLAIM"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load()
    namespaces = {d["metadata"].get("namespace") for _, d in CORE if d["kind"] != "Namespace"}
    assert namespaces == {settings.k8s_namespace} and ("Namespace", settings.k8s_namespace) in BY_KIND
    cm = BY_KIND[("ConfigMap", kub.SETTINGS_CONFIGMAP)]["data"]
    assert cm["FLYWHEEL_K8S_NAMESPACE"] == settings.k8s_namespace
    lake = BY_KIND[("PersistentVolumeClaim", cm["FLYWHEEL_K8S_LAKE_CLAIM"])]
    assert cm["FLYWHEEL_K8S_LAKE_CLAIM"] == settings.k8s_lake_claim
    assert lake["spec"]["accessModes"] == ["ReadWriteMany"]  # every worker and executor mounts it
    assert cm["FLYWHEEL_K8S_SPARK"] in config.K8S_SPARK_MODES
    assert cm["FLYWHEEL_EXECUTION"] == "kubernetes"
    assert ("ServiceAccount", kub.SPARK_SERVICE_ACCOUNT) in BY_KIND
    assert not any("password" in k.lower() or "secret" in k.lower() for k in cm)


def test_workers_may_launch_pods_and_spark_applications():
    role = BY_KIND[("Role", "flywheel-pod-launcher")]
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {"create", "get", "list", "watch", "delete"} <= rules[("", "pods")]
    assert "get" in rules[("", "pods/log")]
    assert {"create", "get", "delete"} <= rules[("sparkoperator.k8s.io", "sparkapplications")]
    binding = BY_KIND[("RoleBinding", "flywheel-pod-launcher")]
    assert binding["roleRef"]["name"] == "flywheel-pod-launcher"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "flywheel-worker", "namespace": "flywheel"}]


DEPLOYMENTS = [d for _, d in CORE if d["kind"] == "Deployment"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["metadata"]["name"] for d in DEPLOYMENTS])
def test_deployments_are_non_root_bounded_and_see_what_they_need(deployment):
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 50000
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["image"] == BY_KIND[("ConfigMap", "flywheel-settings")]["data"]["FLYWHEEL_IMAGE"]
    name = deployment["metadata"]["name"]
    mounts = {m["mountPath"]: m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod.get("volumes", [])}
    lake = BY_KIND[("ConfigMap", "flywheel-settings")]["data"]["FLYWHEEL_LAKE"]
    if name in ("spark-worker", "spark-connect"):  # executors and the driver write the lake
        assert claims[mounts[lake]] == "flywheel-lake"
    if name == "mlflow":
        (env,) = [e for e in pod["containers"][0]["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI"]
        assert env["valueFrom"]["secretKeyRef"]["name"] == "flywheel-mlflow-backend"
