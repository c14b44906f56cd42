"""One SparkSession per process: Spark Connect when ``SPARK_REMOTE`` is set, else a small local master.

Starting a JVM costs ~20 s on a laptop, so the session is created once and reused by every job
and test in the process. The local configuration keeps every file Spark writes (warehouse,
Derby metastore, shuffle spill) under ``FLYWHEEL_HOME/spark``, never in the repository.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from flywheel import config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_SESSION: SparkSession | None = None

# Small enough for 2 cores and 8 GB; a day of flights is ~1,000 rows and 28 days ~25,000.
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "1g",
    "spark.sql.adaptive.enabled": "true",
    # The driver's RPC and block manager listen on loopback (by default Spark binds every interface).
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}


def local_conf(settings: config.Settings) -> dict[str, str]:
    """The builder config of a local session; every path lies under ``FLYWHEEL_HOME/spark``."""
    spark_home = settings.home / "spark"
    derby = spark_home / "derby"
    return {
        **LOCAL_CONF,
        "spark.sql.warehouse.dir": str(spark_home / "warehouse"),
        "spark.local.dir": str(spark_home / "local"),
        # Derby writes derby.log and metastore_db into the working directory unless told otherwise.
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={derby}",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={derby / 'metastore_db'};create=true",
    }


def get_spark(app_name: str = "flywheel", settings: config.Settings | None = None) -> SparkSession:
    """The process's SparkSession, created on first use (Spark Connect if ``SPARK_REMOTE`` is set)."""
    global _SESSION
    if _SESSION is not None and not _is_stopped(_SESSION):
        return _SESSION

    from pyspark.sql import SparkSession

    settings = settings or config.load()
    builder = SparkSession.builder.appName(app_name)
    if settings.spark_remote:
        builder = builder.remote(settings.spark_remote)
    elif settings.spark_submitted:
        # spark-submit set the master, the deploy mode and the driver's host (a pod's address, which
        # executors on other nodes must reach): overriding them with the laptop's loopback would break it.
        pass
    else:
        # Python workers (not used by the jobs, but by ad-hoc UDFs) must run this interpreter, not PATH's.
        config.env_setdefault(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
        conf = local_conf(settings)
        for key in ("spark.sql.warehouse.dir", "spark.local.dir"):
            os.makedirs(conf[key], exist_ok=True)
        builder = builder.master(settings.spark_master)
        for key, value in conf.items():
            builder = builder.config(key, value)
    _SESSION = builder.getOrCreate()
    return _SESSION


def stop_spark() -> None:
    """Stop the cached session (the next :func:`get_spark` starts a new one)."""
    global _SESSION
    if _SESSION is not None:
        _SESSION.stop()
        _SESSION = None


def _is_stopped(spark: SparkSession) -> bool:
    # Someone may have called spark.stop() directly. A Connect session says so itself; a classic
    # one drops its JavaSparkContext (there is no public flag for it).
    flag = getattr(spark, "is_stopped", None)
    if isinstance(flag, bool):
        return flag
    context = getattr(spark, "_sc", None)
    return context is None or getattr(context, "_jsc", None) is None
