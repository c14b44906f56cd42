"""docker/compose.yaml against the Compose specification's JSON schema, and the topology it must have."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import yaml

from tests.deploy.helpers import DOCKER, SCHEMAS

LAKE = "/var/lib/flywheel/lake"
AIRFLOW = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
SPARK = ["spark-master", "spark-worker", "spark-connect"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())  # merge keys (<<) resolved


def test_compose_file_follows_the_specification(validator, compose):
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["services"]["redis"].update(healthchek={"test": ["CMD", "true"]}),  # misspelt key
        lambda c: c["services"]["airflow-worker"]["depends_on"]["redis"].update(condition="service_ready"),
        lambda c: c.update(service={}),  # unknown top-level key
    ],
)
def test_schema_rejects_a_broken_file(validator, compose, break_it):
    broken = copy.deepcopy(compose)
    break_it(broken)
    assert list(validator.iter_errors(broken))


def test_the_topology(compose):
    assert set(compose["services"]) == {
        "postgres", "redis", "airflow-init", *AIRFLOW, "mlflow", *SPARK,
    }  # fmt: skip
    worker = compose["services"]["airflow-worker"]
    assert worker["command"][-2:] == ["--queues", "default,spark"]
    assert worker["deploy"]["replicas"] >= 2
    env = worker["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://") and "@postgres:5432/" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000/flywheel/mlflow"
    assert env["SPARK_REMOTE"] == "sc://spark-connect:15002"
    assert env["FLYWHEEL_PROFILE"] == "cluster"
    mlflow = compose["services"]["mlflow"]
    assert mlflow["command"][:2] == ["mlflow", "server"] and "--serve-artifacts" in mlflow["command"]
    assert mlflow["command"][mlflow["command"].index("--static-prefix") + 1] == "/flywheel/mlflow"
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "@postgres:5432/mlflow" in mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert compose["services"]["spark-master"]["command"][:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    assert compose["services"]["spark-worker"]["command"][:3] == [
        "spark-class", "org.apache.spark.deploy.worker.Worker", "spark://spark-master:7077",
    ]  # fmt: skip
    connect = compose["services"]["spark-connect"]["command"]
    assert connect[0] == "spark-submit" and "org.apache.spark.sql.connect.service.SparkConnectServer" in connect
    assert connect[connect.index("--master") + 1] == "spark://spark-master:7077"


def test_airflow_services_wait_for_healthy_dependencies(compose):
    for name in AIRFLOW:
        service = compose["services"][name]
        assert service["healthcheck"]["test"], name
        deps = service["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy", name
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name


def test_one_lake_volume_at_the_same_path_everywhere(compose):
    assert "lake" in compose["volumes"]
    for name in AIRFLOW + SPARK:
        service = compose["services"][name]
        assert f"lake:{LAKE}" in service["volumes"], name
        assert service["environment"]["FLYWHEEL_LAKE"] == LAKE, name


def test_published_ports_are_loopback_only(compose):
    published = [(n, p) for n, s in compose["services"].items() for p in s.get("ports", [])]
    assert published, "nothing published?"
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name} publishes {port!r} beyond loopback"


def test_secrets_come_from_the_env_file_only():
    text = (DOCKER / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert {"POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "FLYWHEEL_ADMIN_PASSWORD"} <= required
    example = (DOCKER / "env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.M))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)[:}?-]", text))  # $${X}: escaped, the container's own
    assert used <= documented, f"not in docker/env.example: {used - documented}"
    assert not re.search(r"^[A-Z_]+=\S", example, re.M), "env.example must not ship values"
    # every password/secret-looking setting is interpolated, never a literal
    for key, value in re.findall(r"^\s*([A-Z_]*(?:PASSWORD|SECRET|FERNET)[A-Z_]*):\s*(.+)$", text, re.M):
        if key.endswith("_FILE"):  # a path, not a secret
            continue
        assert value.strip().startswith("${"), f"{key} is hard-coded in compose.yaml"
    for url in re.findall(r"postgresql\S*://([^@\s]+)@", text):
        assert "${POSTGRES_PASSWORD" in url, url
