"""Settings in one place: defaults, a TOML file in the user's config folder, the environment.

Excel does not see a shell's environment variables, so a formula user could not change a
setting that lived only there: every setting can also live in ``settings.toml`` in the
user's config folder (``XL_ADDIN_CONFIG`` names another file). The environment overrides
the file, the file overrides the default, and every value is validated with one line that
names where it came from (the file and key, or the variable) and what is allowed.
``lx-addin config show|set|unset|path`` and ``=LX_MMAH_INFO()`` show each value's source.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, fields as dc_fields
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
MIN_ANSWER_BYTES = 1024
from .pacer import DEFAULT_RATE  # noqa: E402  requests a minute per token: Lixinger's limit
MAX_RATE = 1_000_000


def default_cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("xl_addin", appauthor=False)


# --- the settings, their sources and their rules ---------------------------------------
CONFIG_ENV = "XL_ADDIN_CONFIG"
#: the token, when set, overrides the keyring (it is a secret, not a setting: never in the file)
TOKEN_ENV = "LIXINGER_TOKEN"


@dataclass(frozen=True)
class Spec:
    key: str  # in settings.toml and on the command line
    env: str
    default: object
    allowed: str  # what the one-line error says is allowed


SPECS = (
    Spec("base_url", "LIXINGER_BASE_URL", DEFAULT_BASE_URL,
         "an https:// URL (plain http:// only for this machine), e.g. https://open.lixinger.com/api"),
    Spec("timeout", "LIXINGER_TIMEOUT", DEFAULT_TIMEOUT, "a number of seconds above 0, e.g. 30"),
    Spec("budget", "LIXINGER_BUDGET", DEFAULT_BUDGET, "a number of seconds above 0, e.g. 60"),
    Spec("max_age", "XL_ADDIN_MAX_AGE", DEFAULT_MAX_AGE, "a number of seconds, 0 or more, e.g. 3600"),
    Spec("cache_dir", "XL_ADDIN_CACHE_DIR", None, "a folder path, e.g. ~/lx-cache"),
    Spec("profile", "XL_ADDIN_PROFILE", "default", "a profile name (letters, digits, - _ .), e.g. team"),
    Spec("max_answer_bytes", "LIXINGER_MAX_ANSWER_BYTES", DEFAULT_MAX_ANSWER_BYTES,
         f"a whole number of bytes, at least {MIN_ANSWER_BYTES}, e.g. {DEFAULT_MAX_ANSWER_BYTES}"),
    Spec("rate", "LIXINGER_RATE", DEFAULT_RATE,
         f"a whole number of requests a minute, 0 for no pacing, e.g. {DEFAULT_RATE}"),
    Spec("proxy", "LIXINGER_PROXY", None,
         "a proxy URL: http://, https:// or socks5://host:port, e.g. http://proxy.corp:8080"),
    Spec("store", "XL_ADDIN_STORE", None,
         "a history file path, or a desk database URL without a password, e.g. postgresql://analyst@db.desk.local/lixinger"),
)
SPEC = {s.key: s for s in SPECS}
#: the largest value each number of seconds may have: longer is a typo, and inf overflows time arithmetic
_MAX_SECONDS = {"timeout": 86400.0, "budget": 86400.0, "max_age": 3650 * 86400.0}


def config_path(environ=None) -> Path:
    """The settings file: ``XL_ADDIN_CONFIG``, else settings.toml in the user's config folder."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    from platformdirs import user_config_path

    return user_config_path("xl_addin", appauthor=False) / "settings.toml"


def spec_for(name: str) -> Spec:
    """The setting called *name* (its file key or its environment variable)."""
    key = name.strip().lower().replace("-", "_")
    for s in SPECS:
        if key in (s.key, s.env.lower()):
            return s
    raise ConfigError(f"unknown setting {name!r}; the settings are: {', '.join(SPEC)}")



def _whole_number(raw, bad) -> int:
    """An int from a TOML integer or text like "16_777_216"; *bad* makes the error."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise bad("is not a whole number")
    try:
        return int(raw.strip().replace("_", "")) if isinstance(raw, str) else raw
    except ValueError:
        raise bad("is not a whole number") from None


def validate(spec: Spec, raw, origin: str):
    """*raw* (a string from the environment or the command line, or a TOML value) as the
    setting's type; a ConfigError naming *origin* and what is allowed otherwise."""
    def bad(why: str = "is not allowed"):
        return ConfigError(f"{origin}: {raw!r} {why}; expected {spec.allowed}")

    if spec.key in ("timeout", "budget", "max_age"):
        if isinstance(raw, bool):
            raise bad()
        if isinstance(raw, str):
            try:
                raw_num = float(raw.strip())
            except ValueError:
                raise bad("is not a number") from None
        elif isinstance(raw, (int, float)):
            raw_num = float(raw)
        else:
            raise bad("is not a number")
        if not math.isfinite(raw_num) or raw_num > _MAX_SECONDS[spec.key]:
            raise bad(f"is not a usable number of seconds (at most {_MAX_SECONDS[spec.key]:.0f})")
        if raw_num < 0 or (raw_num == 0 and spec.key != "max_age"):
            raise bad("is too small")
        return raw_num
    if spec.key == "max_answer_bytes":
        number = _whole_number(raw, bad)
        if number < MIN_ANSWER_BYTES:
            raise bad("is too small")
        return number
    if spec.key == "rate":
        number = _whole_number(raw, bad)
        if not 0 <= number <= MAX_RATE:
            raise bad("is out of range")
        return number
    if spec.key == "proxy":
        from .proxies import check_proxy, redact_proxy

        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"{origin}: {redact_proxy(raw)!r} is not text; expected {spec.allowed}")
        try:
            return check_proxy(raw)
        except ConfigError as exc:
            raise type(exc)(f"{origin}: {exc}") from None
    if not isinstance(raw, str) or not raw.strip():
        raise bad("is not text")
    text = raw.strip()
    if spec.key == "base_url":
        try:
            return check_base_url(text)
        except ConfigError as exc:
            if origin.startswith(spec.env):
                raise
            raise type(exc)(f"{origin}: {exc}") from None
    if spec.key == "cache_dir":
        return Path(text).expanduser()
    if spec.key == "profile":
        if not all(c.isalnum() or c in "-_." for c in text):
            raise bad()
        return text
    if spec.key == "store":
        from .store.location import is_desk_url, parse_desk_url

        if is_desk_url(text) or "://" in text:  # never echo a URL: it may hold a password
            return parse_desk_url(text, origin).display
        return Path(text).expanduser()
    raise AssertionError(spec.key)


def read_file(path: Path) -> dict:
    """The settings file as {key: raw value}; {} when there is none."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"settings file {path} is a folder; expected a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"settings file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML ({exc}); expected lines like timeout = 30") from None
    for key in data:
        if key not in SPEC:
            raise ConfigError(f"settings file {path}, key {key!r}: unknown setting; the settings are: {', '.join(SPEC)}")
    return data


def resolve(environ=None, path: Path | None = None) -> list[tuple[str, object, str]]:
    """Each setting's effective (key, value, source), source being "default",
    "file <path>" or "environment <VAR>". Raises ConfigError on the first bad value."""
    env = os.environ if environ is None else environ
    path = config_path(env) if path is None else path
    in_file = read_file(path)
    rows = []
    for spec in SPECS:
        raw_env = env.get(spec.env, "")
        if raw_env.strip():
            value = validate(spec, raw_env, f"{spec.env}={raw_env!r}" if spec.key == "base_url" else spec.env)
            rows.append((spec.key, value, f"environment {spec.env}"))
        elif spec.key in in_file:
            value = validate(spec, in_file[spec.key], f"settings file {path}, key {spec.key!r}")
            rows.append((spec.key, value, f"file {path}"))
        else:
            rows.append((spec.key, spec.default, "default"))
    return rows


def info_rows(environ=None) -> list[list]:
    """``=LX_MMAH_INFO()`` rows: one per setting, "key (source)" then the value."""
    rows = []
    for key, value, source in resolve(environ):
        shown = value if isinstance(value, (int, float)) else str(value) if value is not None else "(default)"
        rows.append([f"{key} ({source})", shown])
    rows.append(["settings file", str(config_path(environ))])
    return rows


def _toml_value(value) -> str:
    if hasattr(value, "reveal"):  # a ProxyURL: the file keeps the whole URL (str() would hide its password)
        return json.dumps(value.reveal(), ensure_ascii=False)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value)) if not float(value).is_integer() else str(int(value))
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def write_setting(key: str, value: str | None, environ=None) -> tuple[Path, object]:
    """Set (or, with *value* None, remove) one setting in the settings file, atomically.
    The value is validated first; a bad value or a malformed file changes nothing."""
    spec = spec_for(key)
    path = config_path(environ)
    data = read_file(path)
    if value is None:
        data.pop(spec.key, None)
        checked = None
    else:
        checked = validate(spec, value, f"{spec.key}")
        data[spec.key] = checked
    lines = ["# xl_addin settings (lx-addin config set KEY VALUE); the environment overrides these", ""]
    lines += [f"{k} = {_toml_value(data[k])}" for k in SPEC if k in data]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n", "utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write the settings file {path}: {exc.strerror or exc}") from None
    return path, checked


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
    rate: int = DEFAULT_RATE  # requests a minute per token, 0: no pacing
    proxy: object = None  # a proxies.ProxyURL (its str() hides the password), or None
    store: Path | str | None = None  # None: the local history file (cache_path)

    @classmethod
    def load(cls, environ=None, **overrides) -> "Settings":
        """Defaults, then the settings file, then the environment, then *overrides*
        (None means "not given")."""
        values = {key: value for key, value, _ in resolve(environ)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("base_url"):
            values["base_url"] = check_base_url(overrides["base_url"])
        known = {f.name for f in dc_fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    from_env = load  # the older name, kept for callers

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir or default_cache_dir()) / "mm_ah.sqlite3"

    @property
    def store_location(self) -> Path | str:
        """The history store: the ``store`` setting (a file, or a desk's postgresql:// URL),
        else the local SQLite file; ``xl_addin.store.open_store`` opens either."""
        return self.store if self.store is not None else self.cache_path

# --- what else comes from the environment (read here and nowhere else) ------------------
def env_token(environ=None) -> str | None:
    """``LIXINGER_TOKEN`` as set (stripped), or None."""
    env = os.environ if environ is None else environ
    return env.get(TOKEN_ENV, "").strip() or None


def env_override(key: str, environ=None) -> str | None:
    """The environment variable that overrides setting *key*, when it is set; else None."""
    env = os.environ if environ is None else environ
    spec = spec_for(key)
    return spec.env if env.get(spec.env, "").strip() else None


def profile_setting(environ=None) -> str:
    """The profile in use: the environment, then the settings file, then "default". A bad
    settings file is reported by whatever needs the settings, not here."""
    env = os.environ if environ is None else environ
    try:
        return Settings.load(env).profile
    except ConfigError:
        return env.get(SPEC["profile"].env, "").strip() or "default"


MAX_PART_ENV = "XL_ADDIN_MAX_PART_BYTES"
#: The largest part of an .xlsx we read, uncompressed. The template's sheet (1,000 rows x 43
#: columns) is 1.3 MB and a 20,000-code one 40 MB (bench/refresh.py prints it); 256 MiB is over
#: six times that, and keeps the parsed tree within a desktop's memory.
DEFAULT_MAX_PART_BYTES = 256 * 2**20


def max_part_bytes(environ=None) -> int:
    """The .xlsx part-size limit: ``XL_ADDIN_MAX_PART_BYTES`` (bytes), or the default."""
    env = os.environ if environ is None else environ
    raw = env.get(MAX_PART_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PART_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{MAX_PART_ENV}={raw!r} must be a whole number of bytes above 0 "
                          f"(default {DEFAULT_MAX_PART_BYTES})")
    return value
