"""Settings from the environment, in one place (the README's configuration table)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .exceptions import ConfigError
from .urls import check_base_url, is_loopback_host  # noqa: F401  (they lived here; still importable)

DEFAULT_BASE_URL = "https://open.lixinger.com/api"
DEFAULT_TIMEOUT = 30.0  # read timeout, seconds
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_BUDGET = 60.0  # overall time for one fetch, retries included
DEFAULT_MAX_AGE = 3600.0  # cache freshness, seconds
# the largest answer (100 codes, every field) is about 150 KB of JSON; 100 times that
# leaves room for a much richer API while a gzip bomb stops long before it hurts
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024


def _float_env(name: str, default: float, environ=None) -> float:
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if value < 0 or value != value:
        raise ConfigError(f"{name}={raw!r} must be zero or more seconds")
    return value


def _bytes_env(name: str, default: int, environ=None) -> int:
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number of bytes") from None
    if value < 1024:
        raise ConfigError(f"{name}={raw!r} must be at least 1024 bytes")
    return value


def default_cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("xl_addin", appauthor=False)


@dataclass(frozen=True)
class Settings:
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    budget: float = DEFAULT_BUDGET
    max_age: float = DEFAULT_MAX_AGE
    cache_dir: Path | None = None
    profile: str = "default"
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES  # one answer, decoded

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ
        cache_dir = env.get("XL_ADDIN_CACHE_DIR", "").strip()
        values = dict(
            base_url=check_base_url(env.get("LIXINGER_BASE_URL", "").strip() or DEFAULT_BASE_URL),
            timeout=_float_env("LIXINGER_TIMEOUT", DEFAULT_TIMEOUT, env) or DEFAULT_TIMEOUT,
            budget=_float_env("LIXINGER_BUDGET", DEFAULT_BUDGET, env) or DEFAULT_BUDGET,
            max_age=_float_env("XL_ADDIN_MAX_AGE", DEFAULT_MAX_AGE, env),
            cache_dir=Path(cache_dir).expanduser() if cache_dir else None,
            profile=env.get("XL_ADDIN_PROFILE", "").strip() or "default",
            max_answer_bytes=_bytes_env("LIXINGER_MAX_ANSWER_BYTES", DEFAULT_MAX_ANSWER_BYTES, env),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "base_url" in overrides and overrides["base_url"]:
            values["base_url"] = check_base_url(overrides["base_url"])
        return cls(**values)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir or default_cache_dir()) / "mm_ah.sqlite3"
