"""Which files the plugin serves, and at which URL.

Two roots: the lake (``settings.lake``: reports, manifests, gate summaries) and ``FLYWHEEL_HOME``,
of which only the Data Docs site is served: the home also holds the generated admin password,
the JWT secret and the database files, which no page may reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from flywheel import config

# Where the plugin's FastAPI app is mounted; every URL the pages hold starts here.
URL_PREFIX = "/flywheel"
FILES_PREFIX = f"{URL_PREFIX}/files"
VALIDATION_RESULT_PREFIX = "ValidationResultIdentifier::"
# Evidence and Data Docs only: no Parquet downloads, no databases.
SERVED_SUFFIXES = frozenset(
    {".html", ".json", ".css", ".js", ".png", ".gif", ".svg", ".ico", ".otf", ".ttf", ".woff", ".woff2", ".txt"}
)


class UnsafePath(ValueError):
    """A requested path is outside the served roots, hidden, of a type not served, or not a file."""


@dataclass(frozen=True)
class Root:
    """A served root: files under ``path`` whose path relative to ``path`` starts with one of ``allowed``."""

    name: str
    path: Path
    allowed: tuple[PurePosixPath, ...] = (PurePosixPath("."),)


def roots(settings: config.Settings) -> dict[str, Root]:
    """The served roots by URL name (``lake``, ``home``)."""
    docs = (
        settings.data_docs_dir.relative_to(settings.home)
        if settings.data_docs_dir.is_relative_to(settings.home)
        else None
    )
    return {
        "lake": Root("lake", settings.lake),
        # Only the Data Docs site of the home (the home also holds passwords.json and secrets).
        "home": Root("home", settings.home, (PurePosixPath(docs.as_posix()),) if docs else ()),
    }


def _allowed(relative: PurePosixPath, root: Root) -> bool:
    return any(a == PurePosixPath(".") or relative == a or a in relative.parents for a in root.allowed)


def resolve(root: Root, requested: str) -> Path:
    """The real file ``requested`` (a path relative to ``root``) names, or :class:`UnsafePath`.

    Refused: empty, absolute, ``..`` or NUL in the path, hidden parts (staging folders, locks),
    a suffix not in :data:`SERVED_SUFFIXES`, anything outside the root's allowed folders once
    symlinks are resolved, and anything that is not an existing regular file.
    """
    if not requested or "\x00" in requested or "\\" in requested:
        raise UnsafePath(f"{root.name}: empty or malformed path {requested!r}")
    relative = PurePosixPath(requested)
    if relative.is_absolute() or ".." in relative.parts:
        raise UnsafePath(f"{root.name}: {requested!r} leaves the root")
    if any(part.startswith(".") for part in relative.parts):
        raise UnsafePath(f"{root.name}: {requested!r} is hidden")
    if relative.suffix.lower() not in SERVED_SUFFIXES:
        raise UnsafePath(f"{root.name}: {requested!r}: only {', '.join(sorted(SERVED_SUFFIXES))} files are served")
    if not _allowed(relative, root):
        raise UnsafePath(f"{root.name}: {requested!r} is not in a served folder")
    base = root.path.resolve()
    target = (base / relative).resolve()
    # A symlink inside the root may point anywhere: judge where it really leads.
    if not target.is_relative_to(base) or not _allowed(PurePosixPath(target.relative_to(base).as_posix()), root):
        raise UnsafePath(f"{root.name}: {requested!r} resolves outside the served folders")
    if not target.is_file():
        raise UnsafePath(f"{root.name}: {requested!r} is not a file under {base}")
    return target


def url_for(path: Path, settings: config.Settings) -> str | None:
    """The plugin URL serving ``path`` (lake first, then the home's Data Docs), or None when none does."""
    absolute = Path(path).absolute()
    for root in roots(settings).values():
        base = root.path.absolute()
        if not absolute.is_relative_to(base):
            continue
        relative = PurePosixPath(absolute.relative_to(base).as_posix())
        if _allowed(relative, root):
            return f"{FILES_PREFIX}/{root.name}/{quote(relative.as_posix(), safe='/=')}"
    return None


def data_docs_page(identifier: str, settings: config.Settings) -> Path:
    """The Data Docs page GX 1.x renders for a validation result id (as the gate summary stores it).

    ``str(ValidationResultIdentifier)`` is ``ValidationResultIdentifier::`` + ``/``-joined
    ``to_tuple()`` (suite name split on dots, run name, run time, batch id); the site's
    ``validations`` store writes that tuple as folders plus ``.html``.
    """
    if not identifier.startswith(VALIDATION_RESULT_PREFIX):
        raise ValueError(f"{identifier!r} is not a ValidationResultIdentifier string")
    parts = identifier[len(VALIDATION_RESULT_PREFIX) :].split("/")
    if len(parts) < 4 or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{identifier!r}: expected suite/run_name/run_time/batch_id")
    return settings.data_docs_dir / "validations" / Path(*parts[:-1]) / f"{parts[-1]}.html"
