"""Turn a config file, the environment and command-line flags into a validated ``Config``.

Precedence: flags > ``OLLAMUX_*`` environment variables > the file > defaults. Any unknown
key or ill-typed value raises ``ConfigError`` naming the key, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit, urlunsplit

import yaml

from .builtins import BUILTIN_SECTIONS
from .config import (
    CORE_SECTIONS,
    DEFAULT_BACKEND_URL,
    SECRET_KEYS,
    BackendConfig,
    Config,
    ConfigSection,
)


class ConfigError(Exception):
    """A configuration problem, rendered as one line naming the key and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# Short environment names for the keys people set most; any key can also be set as
# OLLAMUX_<SECTION>__<KEY> (e.g. OLLAMUX_ROUTING__RETRIES=3).
_ENV_SHORTCUTS = {
    "OLLAMUX_HOST": ("server", "host"),
    "OLLAMUX_PORT": ("server", "port"),
    "OLLAMUX_LOG_LEVEL": ("server", "log_level"),
    "OLLAMUX_LOG_FORMAT": ("server", "log_format"),
    "OLLAMUX_WORKERS": ("server", "workers"),
}


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or TOML config file into a plain mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {p}: {exc.strerror}") from exc
    try:
        suffix = p.suffix.lower()
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml", ""):
            shielded, refs = _shield_env_refs(text)
            data = _restore_env_refs(yaml.safe_load(shielded), refs)
        else:
            raise ConfigError("", f"config file {p} must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("", f"cannot parse {p}: {_parse_error(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{p} must hold a mapping at the top level")
    return data


def _parse_error(exc: Exception) -> str:
    """One line saying what is wrong and where (line and column, 1-based)."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        problem = exc.problem or exc.context or "invalid YAML"
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return first


def _shield_env_refs(text: str) -> tuple[str, dict[str, str]]:
    """Hide each ``${...}`` from the YAML parser behind a plain token.

    ``[${KEY}]`` is not valid YAML (``{`` opens a flow mapping), yet it is the natural way
    to write a list of secrets; the tokens are put back before interpolation.
    """
    nonce = secrets.token_hex(4)
    refs: dict[str, str] = {}

    def sub(m: re.Match[str]) -> str:
        token = f"ollamux_env_{nonce}_{len(refs)}"
        refs[token] = m.group(0)
        return token

    return _ENV_REF.sub(sub, text), refs


def _restore_env_refs(value: Any, refs: Mapping[str, str]) -> Any:
    if not refs:
        return value
    if isinstance(value, str):
        for token, ref in refs.items():
            if token in value:
                value = value.replace(token, ref)
        return value
    if isinstance(value, dict):
        return {_restore_env_refs(k, refs): _restore_env_refs(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_env_refs(v, refs) for v in value]
    return value


def interpolate(value: Any, env: Mapping[str, str], key: str = "") -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string, recursively."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(key, f"environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, _join(key, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Collect ``OLLAMUX_*`` variables into a nested mapping of string values."""
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("OLLAMUX_") or name in ("OLLAMUX_CONFIG", "OLLAMUX_ADMIN_KEY"):
            continue
        if name in _ENV_SHORTCUTS:
            section, key = _ENV_SHORTCUTS[name]
            out.setdefault(section, {})[key] = value
        elif name == "OLLAMUX_BACKENDS":
            out["backends"] = [backend_from_url(u) for u in value.split(",") if u.strip()]
        elif "__" in name:
            section, _, key = name[len("OLLAMUX_") :].lower().partition("__")
            out.setdefault(section, {})[key] = value
    return out


def backend_from_url(url: str) -> dict[str, Any]:
    """``http://host:port#openai`` -> a backend mapping (the fragment names the api)."""
    url = url.strip()
    base, _, api = url.partition("#")
    return {"url": base, "api": api or "ollama"}


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective config: file, then environment, then explicit overrides."""
    env = os.environ if env is None else env
    if path is None and env.get("OLLAMUX_CONFIG"):
        path = env["OLLAMUX_CONFIG"]
    data: dict[str, Any] = interpolate(read_file(path), env) if path else {}
    data = deep_merge(data, env_overrides(env))
    if overrides:
        data = deep_merge(data, overrides)
    return build_config(data)


def build_config(
    data: Mapping[str, Any], sections: Sequence[ConfigSection] | None = None
) -> Config:
    """Validate a plain mapping against the core's schema and the sections the configured
    plugins declare (``sections``, when given, instead of asking them), and fill in
    derived defaults."""
    core = {k: v for k, v in data.items() if k in CORE_SECTIONS}
    config = _build(Config, core, "")
    assert isinstance(config, Config)
    if sections is None:
        sections = plugin_sections(config)
    declared = {s.name: s for s in sections}
    disabled = {
        name for name, plugin in BUILTIN_SECTIONS.items() if plugin in config.plugins.disable
    }
    for key in data:
        if key not in CORE_SECTIONS and key not in declared and key not in disabled:
            raise ConfigError(str(key), "unknown key")
    supplied = False
    for s in declared.values():
        value = data.get(s.name)
        if value is None and s.optional:
            continue
        built = _build(s.schema, {} if value is None else value, s.name)
        if s.validate is not None:
            s.validate(built)
        config.sections[s.name] = built
        supplied = supplied or s.supplies_backends
    _finish(config, supplied)
    return config


def plugin_sections(config: Config) -> list[ConfigSection]:
    """The sections the plugins of ``config`` declare (built-ins, entry points, files)."""
    from .plugin_manager import build_plugin_manager

    pm = build_plugin_manager(config, check=False)
    found: list[ConfigSection] = pm.hook.ollamux_config_section()
    return found


def _finish(config: Config, backends_supplied: bool) -> None:
    if not config.backends and not backends_supplied:
        config.backends = [BackendConfig(url=DEFAULT_BACKEND_URL)]
    seen: set[str] = set()
    for i, b in enumerate(config.backends):
        key = f"backends[{i}]"
        parts = urlsplit(b.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{key}.url", f"{b.url!r} is not an http(s) URL")
        b.url = b.url.rstrip("/")
        if (parts.username or parts.password) and (
            b.api_key or any(h.lower() == "authorization" for h in b.headers)
        ):
            raise ConfigError(
                f"{key}.url",
                "credentials in the URL cannot be combined with api_key or an Authorization"
                " header: give one of them",
            )
        if not b.name:
            b.name = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        if b.name in seen:
            raise ConfigError(f"{key}.name", f"duplicate backend name {b.name!r}")
        seen.add(b.name)
        if b.max_concurrency < 0:
            raise ConfigError(f"{key}.max_concurrency", "must be >= 0")
        if not b.max_concurrency:
            b.max_concurrency = 1 if b.api == "ollama" else 16
    s = config.server
    if not 0 <= s.port <= 65535:
        raise ConfigError("server.port", f"{s.port} is not a TCP port")
    if s.max_body_mb <= 0:
        raise ConfigError("server.max_body_mb", "must be > 0")
    if s.body_timeout_s <= 0:
        raise ConfigError("server.body_timeout_s", "must be > 0")
    if s.write_timeout_s <= 0:
        raise ConfigError("server.write_timeout_s", "must be > 0")
    if s.workers < 1:
        raise ConfigError("server.workers", "must be >= 1")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("server.log_level", f"unknown level {s.log_level!r}")
    r = config.routing
    if r.retries < 0:
        raise ConfigError("routing.retries", "must be >= 0")


def parse_port_range(text: str, key: str) -> range:
    """``"24000-24100"`` (inclusive) or ``"24000"`` -> a range of ports."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if not m:
        raise ConfigError(key, f"{text!r} is not a port or a range like 24000-24100")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if not (1 <= lo <= hi <= 65535):
        raise ConfigError(key, f"{text!r} is not a valid port range")
    return range(lo, hi + 1)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _build(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _build(args[0], value, key)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping, got {type(value).__name__}")
        hints = get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        kwargs: dict[str, Any] = {}
        for k, v in value.items():
            sub = _join(key, str(k))
            if k not in fields:
                raise ConfigError(sub, "unknown key")
            kwargs[str(k)] = _build(hints[str(k)], v, sub)
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in kwargs:
                raise ConfigError(_join(key, name), "is required")
        return typing.cast(Any, tp)(**kwargs)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is list:
        (item,) = get_args(tp)
        if isinstance(value, str) and item is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list, got {type(value).__name__}")
        return [_build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _kt, vt = get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping, got {type(value).__name__}")
        return {str(k): _build(vt, v, _join(key, str(k))) for k, v in value.items()}
    return _scalar(tp, value, key)


def _scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(key, f"must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(key, f"must be an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(key, f"must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(key, f"must be a string, got {type(value).__name__}")
        return str(value)
    raise ConfigError(key, f"unsupported type {tp!r}")  # pragma: no cover - schema bug


def mask_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# Keys that name a secret wherever they appear (a plugin's ``token``, ``password``, ...).
_SECRET_NAME = re.compile(
    r"(?i)(^|[_-])(token|password|passwd|secret|api_?key|credentials?)([_-]|$)"
)


def masked(config: Config) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced by ``***``."""

    def walk(value: Any, key: str | None) -> Any:
        if key is not None and (key in SECRET_KEYS or _SECRET_NAME.search(str(key))) and value:
            if isinstance(value, list):
                return ["***"] * len(value)
            if isinstance(value, dict):
                return {k: "***" for k in value}
            return "***"
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, None) for v in value]
        if isinstance(value, str) and "://" in value:
            return mask_url(value)
        return value

    plain = dataclasses.asdict(config)
    plain.update(plain.pop("sections"))
    result = walk(plain, None)
    assert isinstance(result, dict)
    return result
