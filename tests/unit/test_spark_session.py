"""spark_jobs.session under spark-submit: the driver keeps spark-submit's master and host (a Kubernetes
pod or a SparkApplication driver), instead of the laptop's local master on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
from spark_jobs.session import get_spark
spark = get_spark("submitted")
print("MASTER=" + spark.sparkContext.master)
print("BIND=" + spark.conf.get("spark.driver.bindAddress", "unset"))
"""


def test_a_driver_started_by_spark_submit_keeps_its_master(tmp_path):
    import pyspark

    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO), FLYWHEEL_HOME=str(tmp_path / "home"), PYSPARK_PYTHON=sys.executable)
    env.pop("SPARK_REMOTE", None)
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    out = subprocess.run(
        [str(submit), "--master", "local[1]", "--conf", "spark.ui.enabled=false", str(script)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MASTER=local[1]" in out.stdout  # not the laptop default local[2]
    assert "BIND=unset" in out.stdout  # not forced onto loopback
