"""Shared by the deploy tests: where the deployment files are, and the Kubernetes schemas used offline."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The newest Kubernetes release whose schemas kubernetes-validate (1.37) ships, strict variant.
K8S_VERSION = "1.37.0"


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def k8s_definitions() -> dict[str, Any]:
    """The strict Kubernetes definitions of kubernetes-validate, as draft-07 ``#/definitions/...`` refs
    (how the Airflow chart's values schema refers to them)."""
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    text = (folder / "_definitions.json").read_text().replace("#/$defs/", "#/definitions/")
    return json.loads(text)["$defs"]


@cache
def k8s_validator(name: str, array: bool = False) -> jsonschema.Draft7Validator:
    """A validator for one Kubernetes type, e.g. ``io.k8s.api.core.v1.Volume`` (strict), or a list of them."""
    ref = {"$ref": f"#/definitions/{name}"}
    schema = {"type": "array", "items": ref} if array else ref
    return jsonschema.Draft7Validator({**schema, "definitions": k8s_definitions()})
