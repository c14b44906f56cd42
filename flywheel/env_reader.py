"""Typed reads of environment variables, each failing with a message that names the variable.

Pure: an :class:`EnvReader` reads the mapping it is given; :func:`flywheel.config.load` gives it the
process environment. An unset or empty variable takes its embedded default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from flywheel.settings import ConfigError, path_from

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _address(name: str, value: str) -> str:
    """A plain address ``local@domain`` (display names and angle brackets are not accepted)."""
    local, at, domain = value.partition("@")
    if not (local and at and domain) or "@" in domain or any(c.isspace() or c in "<>,;" for c in value):
        raise ConfigError(f"{name}: {value!r} is not an email address (expected name@domain)")
    return value


def _flag(raw: str) -> bool:
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ValueError(raw)


class EnvReader:
    """The variables of ``environ``, read as the type a setting needs. A reader given ``ok`` refuses
    a value (its default too) that ``ok`` says no to, with ``NAME=value: <need>``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        """The variable as set (None when unset)."""
        return self._environ.get(name)

    def text(self, name: str, default: str) -> str:
        return self._environ.get(name) or default

    def optional(self, name: str) -> str | None:
        """The variable, or None when unset or empty."""
        return self._environ.get(name) or None

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise ConfigError(f"{name}={value!r}: expected one of {', '.join(choices)}")
        return value

    def typed(
        self, name: str, default: T, cast: Callable[[str], T], what: str, ok: Callable[[T], bool] | None, need: str
    ) -> T:
        """The variable cast with ``cast`` (a ValueError means it is not ``what``), or ``default``."""
        raw = self._environ.get(name)
        value = default
        if raw is not None and raw != "":
            try:
                value = cast(raw)
            except ValueError as exc:
                raise ConfigError(f"{name}={raw!r} is not {what}") from exc
        if ok is not None and not ok(value):
            raise ConfigError(f"{name}={value}: {need}")
        return value

    def number(self, name: str, default: float, ok: Callable[[float], bool] | None = None, need: str = "") -> float:
        return self.typed(name, default, float, "a number", ok, need)

    def integer(self, name: str, default: int, ok: Callable[[int], bool] | None = None, need: str = "") -> int:
        return self.typed(name, default, int, "an integer", ok, need)

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, lambda port: 0 < port < 65536, "need a TCP port in 1..65535")

    def date(self, name: str, default: dt.date) -> dt.date:
        return self.typed(name, default, dt.date.fromisoformat, "a date (YYYY-MM-DD)", None, "")

    def end_date(self, name: str, default: dt.date) -> dt.date | None:
        """A date, or ``none`` for no end (a deployment whose source keeps receiving days)."""
        raw = self._environ.get(name)
        if raw is not None and raw.strip().lower() == "none":
            return None
        return self.date(name, default)

    def flag(self, name: str, default: bool) -> bool:
        return self.typed(name, default, _flag, f"a boolean ({'/'.join(_TRUE)} or {'/'.join(_FALSE)})", None, "")

    def path(self, name: str, default: Path) -> Path:
        """A local path or a ``file://`` URI (see :func:`flywheel.settings.path_from`)."""
        return path_from(self.text(name, str(default)), name)

    def email(self, name: str, default: str) -> str:
        return _address(name, self.text(name, default))

    def emails(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of addresses; unset or empty gives none."""
        return tuple(_address(name, part.strip()) for part in self.text(name, "").split(",") if part.strip())
