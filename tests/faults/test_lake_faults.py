"""SIGKILL of the lake's writers at their worst moments: the Spark job while it writes and while it
publishes, the features gate while it publishes, and a writer holding a day another wants.

Each case kills a real child process (its whole process group: the Python driver and Spark's JVM)
and checks what is left: every visible partition complete (its rows are its manifest's), nothing
half-written visible, nothing left after ``lake.sweep``, and a rerun giving the rows of an
undisturbed run.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel import catalog, config, faults, features, lake, landing, schema
from tests.services import feature_rows_digest

pytestmark = [pytest.mark.faults, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[2]
DAYS = ["2013-01-01", "2013-01-02", "2013-01-03"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[config.Settings]:
    """A lake with three real days landed and through their gate, and their features built undisturbed."""
    from spark_jobs import build_features

    home = tmp_path_factory.mktemp("faults_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_HOME", str(home))
        mp.delenv("FLYWHEEL_LAKE", raising=False)
        mp.delenv("FLYWHEEL_SOURCE", raising=False)
        settings = config.load()
        for day in DAYS:
            landing.land(day, settings)
            frames = {t: landing.read_raw(landing.landed_file(day, t, settings.lake)) for t in schema.TABLES}
            landing.publish_canonical(day, frames, {"success": True}, settings.lake)
        build_features.run_days([lake.parse_ds(d) for d in DAYS], settings)
        yield settings


@pytest.fixture(scope="module")
def undisturbed(home: config.Settings) -> dict[str, str]:
    return {day: feature_rows_digest(home, day) for day in DAYS}


def _child(home: config.Settings, code: str, failpoint: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLYWHEEL_HOME": str(home.home), "PYTHONPATH": str(REPO)}
    env.pop("FLYWHEEL_FAILPOINTS", None)
    if failpoint:
        env["FLYWHEEL_FAILPOINTS"] = f"{failpoint}=hang"
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_for(predicate: Any, proc: subprocess.Popen[bytes], what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended ({proc.returncode}) before {what}: {proc.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, as an OOM killer or a lost node would
    proc.wait(30)


def _hung_at(home: config.Settings, name: str, proc: subprocess.Popen[bytes]) -> Any:
    return lambda: faults.marker(home.home, name, proc.pid).exists()


def _assert_consistent(settings: config.Settings, dataset: str) -> None:
    """Every visible partition is one complete version: its files' rows are its manifest's."""
    for day in lake.list_partitions("features", dataset, settings.lake):
        path = lake.partition_path("features", dataset, day, settings.lake)
        manifest = features.read_manifest(path)
        assert len(lake.read_frame("features", dataset, day, settings.lake)) == manifest["rows"], path


def _assert_swept(settings: config.Settings) -> None:
    """After a sweep: each partition's versions folder holds its current version and nothing else."""
    lake.sweep(settings.lake, grace_s=0)
    for base in (settings.lake / zone / d for zone in catalog.ZONES for d in ("flights", "flights_candidate", "features")):
        assert not (base / lake.SCRATCH).exists(), base
        for vdir in (base / lake.VERSIONS).glob("ds=*"):
            partition = base / vdir.name
            left = sorted(p.name for p in vdir.iterdir() if p.name != ".lock")
            assert left == ([partition.resolve().name] if partition.exists() else []), vdir
        assert not list(base.glob(".link-*")), base


BUILD = "from spark_jobs import build_features; build_features.main(['--ds', '2013-01-01', '--through', '2013-01-03'])"


def test_spark_job_killed_while_it_writes(home: config.Settings, undisturbed: dict[str, str]) -> None:
    before = {d: catalog.FEATURES.version(d, home.lake) for d in DAYS}
    proc = _child(home, BUILD)
    scratch = catalog.FEATURES.dir(home.lake) / lake.SCRATCH
    _wait_for(lambda: any(scratch.glob("*/_temporary")), proc, "Spark starting to write")
    _kill(proc)
    # Nothing was published: every day still points at its undisturbed version.
    assert {d: catalog.FEATURES.version(d, home.lake) for d in DAYS} == before
    _assert_consistent(home, catalog.FEATURES.dataset)
    assert any(scratch.iterdir())  # the killed job's scratch is there until the sweep...
    _assert_swept(home)  # ...which removes it (its lock died with the job)


def test_spark_job_killed_between_publishing_two_days(home: config.Settings, undisturbed: dict[str, str]) -> None:
    from spark_jobs import build_features

    proc = _child(home, BUILD, failpoint="lake.publish.swapped")
    _wait_for(_hung_at(home, "lake.publish.swapped", proc), proc, "the first day's pointer swap")
    _kill(proc)
    _assert_consistent(home, catalog.FEATURES.dataset)  # the first day new, the others old: each one complete
    assert {d: feature_rows_digest(home, d) for d in DAYS} == undisturbed
    _assert_swept(home)
    build_features.run_days([lake.parse_ds(d) for d in DAYS], home)  # the rerun
    assert {d: feature_rows_digest(home, d) for d in DAYS} == undisturbed
    _assert_swept(home)


@pytest.mark.parametrize("point", ["lake.publish.staged", "lake.move.published"])
def test_features_gate_killed_while_it_publishes(home: config.Settings, point: str) -> None:
    """Before the swap the old published version stays; after it, the data is in both places; either
    way a rerun of the gate publishes the candidate and the retry check is not fooled."""
    from flywheel.validation import validate_features
    from spark_jobs import build_features

    day = "2013-01-03"
    settings = dataclasses.replace(home)
    build_features.run(day, settings, output_dataset=catalog.FEATURES_CANDIDATE.dataset)
    published_before = catalog.FEATURES.version(day, home.lake)
    candidate = catalog.FEATURES_CANDIDATE.read_frame(day, home.lake)
    proc = _child(home, f"from flywheel.validation import validate_features; validate_features({day!r})", point)
    _wait_for(_hung_at(home, point, proc), proc, f"the gate reaching {point}")
    _kill(proc)
    _assert_consistent(home, catalog.FEATURES.dataset)
    assert catalog.FEATURES_CANDIDATE.exists(day, home.lake)  # never in neither place
    if point == "lake.publish.staged":
        assert catalog.FEATURES.version(day, home.lake) == published_before
    _assert_swept(home)
    summary = validate_features(day, settings)  # the rerun
    assert summary["published"] == str(catalog.FEATURES.path(day, home.lake))
    got = catalog.FEATURES.read_frame(day, home.lake)
    pd.testing.assert_frame_equal(got, candidate)
    assert not catalog.FEATURES_CANDIDATE.exists(day, home.lake)
    _assert_swept(home)


def test_two_writers_of_one_day(home: config.Settings) -> None:
    """The second writer fails at once naming the first; the first's death frees the day."""
    day = "2013-01-05"
    write = (
        "import pandas as pd; from flywheel import lake; "
        f"lake.write_frame(pd.DataFrame({{'a': [1, 2]}}), 'predictions', 'flights', {day!r})"
    )
    proc = _child(home, write, failpoint="lake.publish.staged")
    _wait_for(_hung_at(home, "lake.publish.staged", proc), proc, "the first writer holding the day")
    with pytest.raises(lake.PartitionBusy, match=rf"predictions/flights/ds={day} is being written by pid {proc.pid} "):
        lake.write_frame(pd.DataFrame({"a": [3]}), "predictions", "flights", day, home.lake)
    assert not lake.exists("predictions", "flights", day, home.lake)
    _kill(proc)
    _assert_swept(home)
    lake.write_frame(pd.DataFrame({"a": [3]}), "predictions", "flights", day, home.lake)
    assert lake.read_frame("predictions", "flights", day, home.lake)["a"].tolist() == [3]
