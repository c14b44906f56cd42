"""Registering a trained challenger exactly once per Airflow task, whatever its retries.

A training task is keyed on its Airflow identity, an :class:`Attempt` (dag_id, run_id, task_id,
and the try_number it is on). Its MLflow run and its model version carry that identity as tags
(``flywheel.airflow_dag_id``, ``flywheel.airflow_run_id``, ``flywheel.airflow_task_id``,
``flywheel.airflow_try_number``). Before training, a try of the task:

- reuses the version an earlier try registered (:func:`find`, :func:`reuse`): nothing is trained or
  registered again; the ``challenger`` alias goes back to it unless a decision was already made on it;
- otherwise marks the runs earlier tries left without a version (killed, or failed before
  registering) abandoned (:func:`abandon_runs`: status FAILED, tag ``flywheel.abandoned``), so only
  one FINISHED training run of the task is the challenger's.

The version is registered after every artifact of its run is logged, with all its tags in the same
call (:func:`register`), so no version exists without its run's artifacts and tags. An MLflow that
cannot be reached is an :class:`MlflowUnreachable` naming its URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

SUMMARY_FILE = "training_summary.json"
ABANDONED_TAG = "flywheel.abandoned"
DECIDED_TAG = "promotion.decision"


class MlflowUnreachable(RuntimeError):
    """MLflow's tracking server (or its database) did not answer, after MLflow's own retries."""


@dataclass(frozen=True)
class Attempt:
    """Which Airflow task instance try is training (from the task's context)."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int

    def key_tags(self) -> dict[str, str]:
        """The tags that identify the task across its tries."""
        return {
            "flywheel.airflow_dag_id": self.dag_id,
            "flywheel.airflow_run_id": self.run_id,
            "flywheel.airflow_task_id": self.task_id,
        }

    def tags(self) -> dict[str, str]:
        return {**self.key_tags(), "flywheel.airflow_try_number": str(self.try_number)}

    def filter(self, prefix: str = "") -> str:
        """An MLflow search filter on the key tags (``prefix``: e.g. ``name = 'm' and ``)."""
        quoted = (f"tags.`{k}` = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in self.key_tags().items())
        return prefix + " and ".join(quoted)

    def describe(self) -> str:
        return f"{self.dag_id} run {self.run_id}, task {self.task_id}"


def safe_uri(uri: str) -> str:
    """``uri`` without its password, for messages."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return parsed._replace(netloc=netloc).geturl()


def redact(text: str, uri: str) -> str:
    """``text`` (an error message that may quote ``uri``) without ``uri``'s password."""
    password = urlparse(uri).password
    return text.replace(password, "***") if password else text


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says MLflow (its server or its database) could not be reached."""
    import requests
    import sqlalchemy.exc

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        text = str(seen)
        if text.startswith("API request to") and any(
            s in text for s in ("Max retries exceeded", "Connection refused", "ConnectionError", "timeout", "timed out")
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def find(client: MlflowClient, name: str, attempt: Attempt) -> ModelVersion | None:
    """The version an earlier try of ``attempt``'s task registered, or None."""
    found = client.search_model_versions(attempt.filter(f"name = '{name}' and "))
    if not found:
        return None
    if len(found) > 1:
        log.warning(
            "%d versions of %s carry the identity of %s: reusing the latest", len(found), name, attempt.describe()
        )
    return max(found, key=lambda mv: int(mv.version))


def reuse(client: MlflowClient, name: str, mv: ModelVersion, alias: str, attempt: Attempt) -> dict[str, Any]:
    """Point ``alias`` back at ``mv`` (unless it was decided on already), finish its run; returns the summary."""
    import mlflow.artifacts

    version = str(mv.version)
    summary = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{SUMMARY_FILE}")
    if DECIDED_TAG not in (mv.tags or {}) and (mv.aliases is None or alias not in mv.aliases):
        client.set_registered_model_alias(name, alias, version)
    run = client.get_run(mv.run_id)
    if run.info.status != "FINISHED":
        # Killed after registering: the run holds everything the version needs.
        client.set_terminated(mv.run_id, "FINISHED")
    log.warning(
        "%s, try %d: reusing %s v%s registered by try %s (run %s); nothing trained again",
        attempt.describe(),
        attempt.try_number,
        name,
        version,
        (mv.tags or {}).get("flywheel.airflow_try_number", "?"),
        mv.run_id,
    )
    return {**summary, "model_version": version, "model_uri": f"models:/{name}/{version}", "reused": True}


def abandon_runs(client: MlflowClient, experiment_id: str, attempt: Attempt) -> list[str]:
    """Mark the training runs that earlier tries of the task left without a version; returns their ids."""
    runs = client.search_runs([experiment_id], filter_string=attempt.filter("tags.`flywheel.kind` = 'training' and "))
    abandoned = []
    for run in runs:
        if ABANDONED_TAG in run.data.tags:
            continue
        client.set_tag(
            run.info.run_id,
            ABANDONED_TAG,
            f"try {run.data.tags.get('flywheel.airflow_try_number', '?')} ended before registering a version; "
            f"superseded by try {attempt.try_number}",
        )
        if run.info.status != "FAILED":
            client.set_terminated(run.info.run_id, "FAILED")
        abandoned.append(run.info.run_id)
    if abandoned:
        log.warning("%s: marked %d unfinished run(s) abandoned: %s", attempt.describe(), len(abandoned), abandoned)
    return abandoned


def register(name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` with all its ``tags`` at once; returns the version."""
    import mlflow

    return str(mlflow.register_model(model_uri, name, tags=tags).version)
