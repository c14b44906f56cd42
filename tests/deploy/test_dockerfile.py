"""docker/Dockerfile cannot be built here (no Docker engine): its shape is checked instead."""

from __future__ import annotations

import re

import pytest

from tests.deploy.helpers import DOCKER, REPO


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions((DOCKER / "Dockerfile").read_text())


def test_base_image_is_pinned_python_311_slim(steps):
    froms = [args for op, args in steps if op == "FROM"]
    assert froms == ["python:3.11-slim-bookworm"]
    assert not any(f.endswith(":latest") or ":" not in f for f in froms)


def test_runs_as_numeric_non_root_user(steps):
    users = [args for op, args in steps if op == "USER"]
    assert users, "no USER: the image would run as root"
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]) and int(users[-1].split(":")[0]) == 50000


def test_java_17_and_an_arch_independent_java_home(steps):
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "openjdk-17-jre-headless" in runs
    env = " ".join(args for op, args in steps if op == "ENV")
    java_home = re.search(r"JAVA_HOME=(\S+)", env).group(1)
    assert "amd64" not in java_home and "arm64" not in java_home
    assert "ln -s" in runs and java_home in runs  # the symlink that makes it so


def test_lock_installed_with_uv_before_the_code_is_copied(steps):
    ops = [(op, args) for op, args in steps if op in ("COPY", "RUN")]
    lock = next(i for i, (op, args) in enumerate(ops) if op == "COPY" and "requirements.txt" in args)
    install = next(i for i, (op, args) in enumerate(ops) if op == "RUN" and "uv pip install" in args)
    code = next(i for i, (op, args) in enumerate(ops) if op == "COPY" and args.split()[0] == ".")
    assert lock < install < code
    assert "--compile-bytecode" in ops[install][1] and "-r /opt/flywheel/requirements.txt" in ops[install][1]


def test_dags_baked_in_and_paths_set(steps):
    env = " ".join(args for op, args in steps if op == "ENV")
    for setting in (
        "AIRFLOW__CORE__DAGS_FOLDER=/opt/flywheel/dags",
        "AIRFLOW__CORE__PLUGINS_FOLDER=/opt/flywheel/plugins",
        "FLYWHEEL_HOME=/var/lib/flywheel",
    ):
        assert setting in env
    assert re.search(r"PYTHONPATH=/opt/flywheel\b", env)
    assert not any(op == "HEALTHCHECK" for op, _ in steps)


def test_dockerignore_keeps_state_and_venv_out_of_the_context():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".git", ".flywheel*", "**/__pycache__"} <= ignored


def test_the_parser_sees_a_root_image():
    # The checks above can fail: an image without USER is caught.
    steps = instructions("FROM python:3.11-slim-bookworm\nRUN echo hi \\\n && true\n")
    assert [op for op, _ in steps] == ["FROM", "RUN"]
    assert not [a for op, a in steps if op == "USER"]
