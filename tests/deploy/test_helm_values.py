"""docker/helm/values.yaml against the official Airflow chart's values schema (the vendored excerpt,
tests/deploy/schemas/airflow-chart-values.excerpt.json), and what Flywheel needs of it."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml

from tests.deploy.helpers import DOCKER, SCHEMAS, k8s_definitions, yaml_docs


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "airflow-chart-values.excerpt.json").read_text())
    schema["definitions"] = k8s_definitions()
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def settings_configmap() -> dict:
    (cm,) = [d for d in yaml_docs(DOCKER / "k8s" / "settings.yaml") if d["kind"] == "ConfigMap"]
    return cm


def test_values_follow_the_chart_schema(validator, values):
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda v: v["workers"].update(replica=2),  # misspelt: the chart closes `workers`
        lambda v: v.update(executor="Celery"),  # not an executor class name
        lambda v: v["volumeMounts"][0].update(mountpath="/lake"),  # not a VolumeMount field (strict k8s types)
        lambda v: v["workers"]["resources"].update(request={"cpu": "1"}),
        lambda v: v["dags"]["persistence"].update(enable=False),
    ],
)
def test_schema_rejects_broken_values(validator, values, break_it):
    broken = copy.deepcopy(values)
    break_it(broken)
    assert list(validator.iter_errors(broken))


def test_airflow_version_matches_the_lock(values):
    import airflow

    assert values["airflowVersion"] == airflow.__version__
    assert values["airflowVersion"].startswith("3.3.")


def test_celery_workers_on_both_queues_with_the_lake(values, settings_configmap):
    assert values["executor"] == "CeleryExecutor"
    workers = values["workers"]
    assert workers["replicas"] == 2
    assert "--queues default,spark" in workers["args"][-1]
    assert workers["resources"]["requests"] and workers["resources"]["limits"]
    assert workers["serviceAccount"] == {"create": False, "name": "flywheel-worker"}
    (volume,) = values["volumes"]
    (mount,) = values["volumeMounts"]
    assert volume["persistentVolumeClaim"]["claimName"] == settings_configmap["data"]["FLYWHEEL_K8S_LAKE_CLAIM"]
    assert mount == {"name": volume["name"], "mountPath": settings_configmap["data"]["FLYWHEEL_LAKE"]}


def test_image_settings_and_credentials(values, settings_configmap):
    image = values["images"]["airflow"]
    assert f"{image['repository']}:{image['tag']}" == settings_configmap["data"]["FLYWHEEL_IMAGE"]
    assert image["tag"] != "latest"
    assert values["dags"]["gitSync"]["enabled"] is False and values["dags"]["persistence"]["enabled"] is False
    assert values["config"]["core"]["dags_folder"] == "/opt/flywheel/dags"
    assert yaml.safe_load(values["extraEnvFrom"]) == [{"configMapRef": {"name": settings_configmap["metadata"]["name"]}}]
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"] and values["data"]["resultBackendSecretName"]
    assert values["jwtSecretName"] and values["apiSecretKeySecretName"] and values["fernetKeySecretName"]
    assert {s["envName"] for s in values["secret"]} == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    text = (DOCKER / "helm" / "values.yaml").read_text().lower()
    assert "password:" not in text and "pass:" not in text  # no credential in the values


def test_non_root_security_contexts(values):
    assert values["uid"] == 50000 and values["gid"] == 0
    pod, container = values["securityContexts"]["pod"], values["securityContexts"]["container"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 50000
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
