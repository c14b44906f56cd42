"""Every Flywheel setting, read from environment variables with embedded defaults.

This is the only module that touches the environment: it reads the settings into a
:class:`~flywheel.settings.Settings` (what they are and what derives from them lives there), and
builds the environment of child processes. Nothing here touches a database, an Airflow Variable or
Connection, or the network, so DAG files may import it at parse time.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote, urlparse

from flywheel.clock import ClockError, ReplayClock
from flywheel.env_reader import EnvReader
from flywheel.settings import (
    DEFAULT_SOURCE,
    MLFLOW_PATH,
    ConfigError,
    Settings,
    postgres_socket_dir,
    with_database,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

EXECUTIONS = ("local", "kubernetes")
PROFILES = ("laptop", "cluster")
# With FLYWHEEL_EXECUTION=kubernetes, build_features runs as a plain pod (spark-submit in the Flywheel
# image, against SPARK_REMOTE or FLYWHEEL_SPARK_MASTER) or as a SparkApplication of the Spark operator.
K8S_SPARK_MODES = ("pod", "spark-operator")
DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")


def _database_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in DATABASE_SCHEMES:
        raise ConfigError(
            f"FLYWHEEL_DATABASE_URL (scheme {parsed.scheme!r}): "
            f"expected a PostgreSQL URL ({', '.join(s + '://' for s in DATABASE_SCHEMES)}), "
            "e.g. postgresql://user:password@db.example.com:5432/postgres"
        )
    return value


def _replay(env: EnvReader, first: dt.date, last: dt.date) -> ReplayClock | None:
    """The replay clock when FLYWHEEL_REPLAY_SECONDS > 0 (then FLYWHEEL_REPLAY_EPOCH is required)."""
    seconds = env.number(
        "FLYWHEEL_REPLAY_SECONDS", 0.0, lambda s: s >= 0, "need 0 (no replay) or the wall seconds per data day"
    )
    if seconds == 0:
        return None
    raw = env.text("FLYWHEEL_REPLAY_EPOCH", "")
    try:
        epoch = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ConfigError(
            f"FLYWHEEL_REPLAY_EPOCH={raw!r}: the replay clock needs its start, an ISO date-time with a time zone "
            "(e.g. 2026-12-02T18:00:00+00:00; `make live` sets it)"
        ) from exc
    from_day = env.date("FLYWHEEL_REPLAY_FROM", first)
    try:
        return ReplayClock(epoch, dt.timedelta(seconds=seconds), from_day, last)
    except ClockError as exc:
        raise ConfigError(f"FLYWHEEL_REPLAY_*: {exc}") from exc


def failpoints() -> dict[str, str]:
    """``FLYWHEEL_FAILPOINTS`` (``name=action,...``; see :mod:`flywheel.faults`), read on every call so
    a test can arm a failpoint in a child process's environment; unset in normal runs."""
    raw = os.environ.get("FLYWHEEL_FAILPOINTS", "").strip()
    out: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        name, sep, action = entry.partition("=")
        if not sep or action not in ("hang", "raise", "exit") or not name:
            raise ConfigError(f"FLYWHEEL_FAILPOINTS entry {entry!r}: expected name=hang|raise|exit")
        out[name] = action
    return out


def worker_hostname() -> str:
    """The host name a task instance records (Airflow's ``[core] hostname_callable`` on the cluster
    profile's Celery workers): FLYWHEEL_WORKER_HOSTNAME when set (several workers on one machine),
    else the machine's fully qualified name, Airflow's default."""
    import socket

    return os.environ.get("FLYWHEEL_WORKER_HOSTNAME") or socket.getfqdn()


def load() -> Settings:
    """Read the settings now (call again after changing the environment)."""
    env = EnvReader(os.environ)
    home = env.path("FLYWHEEL_HOME", REPO_ROOT / ".flywheel")
    lake = env.path("FLYWHEEL_LAKE", home / "lake")
    execution = env.choice("FLYWHEEL_EXECUTION", "local", EXECUTIONS)
    database_env = env.raw("FLYWHEEL_DATABASE_URL")
    # Embedded: the server of this FLYWHEEL_HOME, reached over its Unix socket as the superuser.
    database_url = (
        _database_url(database_env)
        if database_env
        else f"postgresql://postgres@/postgres?host={quote(str(postgres_socket_dir(home)), safe='/')}"
    )
    airflow_db = env.text("FLYWHEEL_AIRFLOW_DATABASE", "airflow")
    mlflow_db = env.text("FLYWHEEL_MLFLOW_DATABASE", "mlflow")
    profile = env.choice("FLYWHEEL_PROFILE", "laptop", PROFILES)
    k8s_spark = env.choice("FLYWHEEL_K8S_SPARK", "pod", K8S_SPARK_MODES)
    bind_host = env.text("FLYWHEEL_BIND_HOST", "127.0.0.1")
    client_host = "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
    mlflow_port = env.port("FLYWHEEL_MLFLOW_PORT", 5000)
    mlflow_env = env.raw("MLFLOW_TRACKING_URI")
    mlflow_backend = with_database(database_url, mlflow_db, "postgresql")
    if profile == "cluster":
        # Tasks reach MLflow only over HTTP: the stack's tracking server (artifacts served by it too).
        mlflow_uri = mlflow_env or f"http://{client_host}:{mlflow_port}{MLFLOW_PATH}"
        mlflow_stack_server = not mlflow_env
    else:
        # The laptop: tasks write to the store directly; the stack's server shows the same store.
        mlflow_uri = mlflow_env or mlflow_backend
        mlflow_stack_server = not mlflow_uri.startswith(("http://", "https://"))
        mlflow_backend = mlflow_uri if mlflow_stack_server else mlflow_backend
    at_least_1 = lambda n: n >= 1  # noqa: E731
    celery_workers = env.integer("FLYWHEEL_CELERY_WORKERS", 2, at_least_1, "need at least 1 worker")
    celery_concurrency = env.integer(
        "FLYWHEEL_CELERY_CONCURRENCY", 2, at_least_1, "need at least 1 task slot per worker"
    )
    spark_cores = env.integer("FLYWHEEL_SPARK_WORKER_CORES", 2, at_least_1, "need at least 1 core")
    start_date = env.date("FLYWHEEL_START_DATE", dt.date(2013, 1, 1))
    end_date = env.end_date("FLYWHEEL_END_DATE", dt.date(2013, 12, 31))
    if end_date is not None and end_date < start_date:
        raise ConfigError(f"FLYWHEEL_END_DATE={end_date} is before FLYWHEEL_START_DATE={start_date}")
    replay = _replay(env, start_date, end_date or dt.date(2013, 12, 31))
    live_seconds = env.number("FLYWHEEL_LIVE_SECONDS", 60.0, lambda s: s > 0, "need the wall seconds per data day, > 0")
    min_rows = env.integer("FLYWHEEL_MIN_ROWS_PER_DAY", 100)
    max_rows = env.integer("FLYWHEEL_MAX_ROWS_PER_DAY", 2000)
    if not 0 < min_rows <= max_rows:
        raise ConfigError(
            f"FLYWHEEL_MIN_ROWS_PER_DAY={min_rows} and FLYWHEEL_MAX_ROWS_PER_DAY={max_rows}: need 0 < min <= max"
        )
    min_rate = env.number("FLYWHEEL_MIN_LABEL_RATE", 0.01)
    max_rate = env.number("FLYWHEEL_MAX_LABEL_RATE", 0.9)
    if not 0 <= min_rate < max_rate <= 1:
        raise ConfigError(
            f"FLYWHEEL_MIN_LABEL_RATE={min_rate} and FLYWHEEL_MAX_LABEL_RATE={max_rate}: need 0 <= min < max <= 1"
        )
    drift_share = env.number("FLYWHEEL_DRIFT_SHARE", 0.3, lambda x: 0 < x <= 1, "need a share of features in (0, 1]")
    prediction_drift = env.number("FLYWHEEL_PREDICTION_DRIFT", 1.25, lambda x: x > 0, "need a distance > 0")
    quality_drop = env.number("FLYWHEEL_QUALITY_DROP", 0.05, lambda x: 0 <= x < 1, "need a ROC AUC drop in [0, 1)")
    consecutive = env.integer("FLYWHEEL_DRIFT_CONSECUTIVE_DAYS", 2, at_least_1, "need at least 1 day")
    cooldown = env.integer("FLYWHEEL_RETRAIN_COOLDOWN_DAYS", 7, lambda n: n >= 0, "need 0 (no cooldown) or more days")
    label_lag = env.integer("FLYWHEEL_LABEL_LAG_DAYS", 0)
    smtp_starttls = env.flag("FLYWHEEL_SMTP_STARTTLS", False)
    smtp_ssl = env.flag("FLYWHEEL_SMTP_SSL", False)
    if smtp_starttls and smtp_ssl:
        raise ConfigError(
            "FLYWHEEL_SMTP_STARTTLS and FLYWHEEL_SMTP_SSL are both on: use STARTTLS (usually port 587) "
            "or implicit TLS (usually port 465), not both"
        )
    smtp_user = env.optional("FLYWHEEL_SMTP_USER")
    smtp_password = env.optional("FLYWHEEL_SMTP_PASSWORD")
    if (smtp_user is None) != (smtp_password is None):
        raise ConfigError(
            "FLYWHEEL_SMTP_USER and FLYWHEEL_SMTP_PASSWORD go together: set both to log in to the SMTP server, "
            "or neither to send without login"
        )
    smtp_timeout = env.number("FLYWHEEL_SMTP_TIMEOUT", 30.0, lambda s: s > 0, "need a number of seconds > 0")
    if label_lag < 0:
        raise ConfigError(
            f"FLYWHEEL_LABEL_LAG_DAYS={label_lag}: labels cannot arrive before the flight; need 0 or more"
        )
    return Settings(
        home=home,
        lake=lake,
        source=env.text("FLYWHEEL_SOURCE", DEFAULT_SOURCE),
        mlflow_tracking_uri=mlflow_uri,
        mlflow_backend_uri=mlflow_backend,
        mlflow_stack_server=mlflow_stack_server,
        profile=profile,
        execution=execution,
        spark_remote=env.optional("SPARK_REMOTE"),
        spark_submitted=bool(env.raw("PYSPARK_GATEWAY_PORT")),
        spark_master=env.raw("FLYWHEEL_SPARK_MASTER")
        or (
            f"spark://{client_host}:{env.port('FLYWHEEL_SPARK_MASTER_PORT', 7077)}"
            if profile == "cluster"
            else "local[2]"
        ),
        gx_dir=env.path("FLYWHEEL_GX_DIR", REPO_ROOT / "expectations"),
        k8s_image=env.text("FLYWHEEL_IMAGE", "flywheel:latest"),
        k8s_namespace=env.text("FLYWHEEL_K8S_NAMESPACE", "flywheel"),
        k8s_spark=k8s_spark,
        k8s_lake_claim=env.text("FLYWHEEL_K8S_LAKE_CLAIM", "flywheel-lake"),
        celery_broker_url=env.text("FLYWHEEL_CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        celery_workers=celery_workers,
        celery_concurrency=celery_concurrency,
        spark_master_port=env.port("FLYWHEEL_SPARK_MASTER_PORT", 7077),
        spark_master_ui_port=env.port("FLYWHEEL_SPARK_MASTER_UI_PORT", 8091),
        spark_worker_port=env.port("FLYWHEEL_SPARK_WORKER_PORT", 7078),
        spark_worker_ui_port=env.port("FLYWHEEL_SPARK_WORKER_UI_PORT", 8092),
        spark_worker_cores=spark_cores,
        spark_worker_memory=env.text("FLYWHEEL_SPARK_WORKER_MEMORY", "2g"),
        spark_driver_memory=env.text("FLYWHEEL_SPARK_DRIVER_MEMORY", "3g"),
        min_rows_per_day=min_rows,
        max_rows_per_day=max_rows,
        min_label_rate=min_rate,
        max_label_rate=max_rate,
        max_excluded_share=env.number("FLYWHEEL_MAX_EXCLUDED_SHARE", 0.8),
        history_days=(7, 28),
        schedule=env.text("FLYWHEEL_SCHEDULE", "@daily"),
        start_date=start_date,
        end_date=end_date,
        replay=replay,
        live_seconds=live_seconds,
        history_start=env.date("FLYWHEEL_HISTORY_START", dt.date(2013, 1, 1)),
        mlflow_experiment=env.text("FLYWHEEL_MLFLOW_EXPERIMENT", "flights_delay"),
        model_name=env.text("FLYWHEEL_MODEL_NAME", "flights_delay"),
        train_window_days=env.integer("FLYWHEEL_TRAIN_WINDOW_DAYS", 28),
        holdout_days=env.integer("FLYWHEEL_HOLDOUT_DAYS", 7),
        tuning_trials=env.integer("FLYWHEEL_TUNING_TRIALS", 8),
        seed=env.integer("FLYWHEEL_SEED", 42),
        primary_metric=env.text("FLYWHEEL_PRIMARY_METRIC", "roc_auc"),
        promotion_margin=env.number("FLYWHEEL_PROMOTION_MARGIN", 0.002),
        slice_tolerance=env.number("FLYWHEEL_SLICE_TOLERANCE", 0.03),
        slice_min_rows=env.integer("FLYWHEEL_SLICE_MIN_ROWS", 300),
        promotion_floor=env.number("FLYWHEEL_PROMOTION_FLOOR", 0.55),
        drift_share_threshold=drift_share,
        prediction_drift_threshold=prediction_drift,
        quality_drop=quality_drop,
        drift_consecutive_days=consecutive,
        retrain_cooldown_days=cooldown,
        label_lag_days=label_lag,
        quality_window_days=env.integer("FLYWHEEL_QUALITY_WINDOW_DAYS", 7),
        database_url=database_url,
        database_embedded=not database_env,
        airflow_database=airflow_db,
        mlflow_database=mlflow_db,
        airflow_sql_alchemy_conn=env.raw("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        or with_database(database_url, airflow_db, "postgresql+psycopg2"),
        bind_host=bind_host,
        airflow_port=env.port("FLYWHEEL_AIRFLOW_PORT", 8080),
        mlflow_port=mlflow_port,
        spark_connect_port=env.port("FLYWHEEL_SPARK_CONNECT_PORT", 15002),
        preload=env.flag("FLYWHEEL_PRELOAD", True),
        alert_emails=env.emails("FLYWHEEL_ALERT_EMAILS"),
        alert_from=env.email("FLYWHEEL_ALERT_FROM", "flywheel@localhost"),
        smtp_host=env.text("FLYWHEEL_SMTP_HOST", "localhost"),
        # The port the transport usually listens on: 465 implicit TLS, 587 STARTTLS, 25 plain.
        smtp_port=env.port("FLYWHEEL_SMTP_PORT", 465 if smtp_ssl else 587 if smtp_starttls else 25),
        smtp_user=smtp_user,
        smtp_password=smtp_password,
        smtp_starttls=smtp_starttls,
        smtp_ssl=smtp_ssl,
        smtp_timeout=smtp_timeout,
    )


# The environment of this process and of the processes it starts. Settings are read above only; these
# are the other places Flywheel touches os.environ, so that no module outside config does.


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment with ``overrides``: what a process the stack starts runs with."""
    return {**os.environ, **overrides}


def env_values(names: Iterable[str]) -> dict[str, str]:
    """The variables among ``names`` that are set (and not empty) here, as set: what a Kubernetes job
    pod is handed so that it sees what the in-process task would have seen."""
    return {name: os.environ[name] for name in names if os.environ.get(name)}


def env_setdefault(**values: str) -> None:
    """Set the variables that are unset, for a library that reads its own (Great Expectations, PySpark)."""
    for name, value in values.items():
        os.environ.setdefault(name, value)


def env_update(values: Mapping[str, str]) -> None:
    """Set variables of this process: :func:`load` sees them from now on and child processes inherit them."""
    os.environ.update(values)


def env_unset(*names: str) -> None:
    """Unset variables of this process (those not set are ignored)."""
    for name in names:
        os.environ.pop(name, None)
