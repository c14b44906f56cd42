"""MLflow access for the registry: one client on the configured store, aliases resolved to versions.

``models:/`` URIs are resolved through MLflow's process-wide registry URI, so :func:`connect`
sets it (and the tracking URI) from the settings before returning a client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from flywheel.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
THRESHOLD_TAG = "decision_threshold"


class RegistryError(RuntimeError):
    """A model version or alias the registry step needs is missing or inconsistent."""


def connect(settings: Settings) -> MlflowClient:
    """A client on ``settings.mlflow_tracking_uri`` (also made MLflow's default, for ``models:/`` URIs)."""
    import mlflow
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        # SQLite creates the database file but not its folder.
        from pathlib import Path

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    """The version an alias of a registered model points at, or None (no alias, or no such model)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise
    version = model.aliases.get(alias)
    return int(version) if version is not None else None


def versions(client: MlflowClient, name: str) -> list[int]:
    """Every version number of a registered model, ascending ([] when the model is not registered)."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(int(v.version) for v in found)


def get_version(client: MlflowClient, name: str, version: int) -> ModelVersion:
    """A model version, or a RegistryError naming the versions that do exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        existing = versions(client, name)
        listed = ", ".join(f"v{v}" for v in existing) if existing else "none"
        raise RegistryError(f"registered model {name!r} has no version {version}; its versions: {listed}") from exc


def decision_threshold(mv: ModelVersion) -> float:
    """The version's ``decision_threshold`` tag (set by training), as a float."""
    raw = (mv.tags or {}).get(THRESHOLD_TAG)
    if raw is None:
        raise RegistryError(
            f"model {mv.name} v{mv.version} has no {THRESHOLD_TAG!r} tag: it was not registered by "
            "flywheel.training; retrain, or tag the version with its threshold"
        )
    try:
        return float(raw)
    except ValueError as exc:
        raise RegistryError(f"model {mv.name} v{mv.version}: tag {THRESHOLD_TAG}={raw!r} is not a number") from exc


def load_model(name: str, version: int, settings: Settings | None = None) -> Any:
    """The sklearn model of one registered version (pinned by number, never by alias).

    Points MLflow at the configured store first: without it MLflow would read (and create) its
    default store in the working directory.
    """
    import mlflow.sklearn

    from flywheel import config

    connect(settings or config.load())
    return mlflow.sklearn.load_model(f"models:/{name}/{version}")
