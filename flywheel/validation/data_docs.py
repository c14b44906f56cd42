"""The GX context of the gates and its run state: stored validation results and the Data Docs site.

One context per process and configuration (loading it parses the yml and the suites). Results are
stored under ``<FLYWHEEL_HOME>/gx/validations`` and rendered into ``<FLYWHEEL_HOME>/gx/data_docs``;
both are shared by every task process, so writing a result and building the docs hold one lock.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel import config
from flywheel.validation import suites
from flywheel.validation._gx import import_gx

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

_CONTEXTS: dict[tuple[Path, Path], FileDataContext] = {}
# Result identifiers waiting for the Data Docs build at the end of batched_data_docs().
_DEFERRED_DOCS: list[Any] | None = None


def gx_home(settings: config.Settings) -> Path:
    return settings.home / "gx"


def get_context(settings: config.Settings | None = None) -> FileDataContext:
    """The committed file context (``settings.gx_dir``) with run state under ``<FLYWHEEL_HOME>/gx``."""
    settings = settings or config.load()
    key = (settings.gx_dir, settings.home)
    if key not in _CONTEXTS:
        gx = import_gx()
        gx_home(settings).mkdir(parents=True, exist_ok=True)
        _CONTEXTS[key] = gx.get_context(
            mode="file",
            context_root_dir=str(settings.gx_dir),
            runtime_environment={suites.GX_HOME_VARIABLE: str(gx_home(settings))},
        )
    return _CONTEXTS[key]


def data_docs_index(settings: config.Settings) -> Path:
    return settings.data_docs_dir / "index.html"


@contextmanager
def docs_lock(settings: config.Settings) -> Iterator[None]:
    """Serialise result writes and docs builds across processes: a build re-reads every stored result."""
    path = gx_home(settings) / ".data_docs.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def batched_data_docs(settings: config.Settings | None = None) -> Iterator[None]:
    """Inside this block, checkpoints store their results but Data Docs are built once, at the end.

    Rebuilding the docs site re-reads every stored result for its index, so one build per
    checkpoint grows with the lake's history; a range run validates many days and builds once.
    The docs are built also when the block fails (the results that were stored get their pages).
    """
    global _DEFERRED_DOCS
    settings = settings or config.load()
    outer, _DEFERRED_DOCS = _DEFERRED_DOCS, []
    try:
        yield
    finally:
        identifiers, _DEFERRED_DOCS = _DEFERRED_DOCS, outer
        if identifiers and outer is not None:
            outer.extend(identifiers)
        elif identifiers:
            build_data_docs(settings, identifiers)


def build_data_docs(settings: config.Settings, identifiers: list[Any]) -> None:
    """Render the pages of ``identifiers`` and the index, serialised across processes by a lock."""
    with docs_lock(settings):
        get_context(settings).build_data_docs(resource_identifiers=identifiers)


def publish_results(settings: config.Settings, identifiers: list[Any]) -> None:
    """Stored results get their Data Docs pages now, or at the end of :func:`batched_data_docs`."""
    if _DEFERRED_DOCS is not None:
        _DEFERRED_DOCS.extend(identifiers)
    else:
        build_data_docs(settings, identifiers)
