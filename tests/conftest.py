"""Suite-wide setup: every test runs against throw-away homes, never the user's .flywheel/.

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports airflow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="flywheel-tests-"))

os.environ["FLYWHEEL_HOME"] = str(_SESSION_HOME / "home")
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_SESSION_HOME / 'airflow' / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["GX_ANALYTICS_ENABLED"] = "False"
# Tests start their own local Spark; a Spark Connect URL from the caller's shell must not leak in.
os.environ.pop("SPARK_REMOTE", None)
os.environ.pop("FLYWHEEL_EXECUTION", None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)
