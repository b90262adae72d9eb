"""The configuration schema of the core, and how plugins declare their own sections.

The core owns ``server``, ``backends``, ``routing`` and ``plugins``. Every other top-level
section belongs to a plugin, which declares it (a dataclass of its keys, their defaults and
its validation) through the ``ollamux_config_section`` hook; ``config_loader`` turns files,
environment and flags into these objects and reports unknown or ill-typed keys either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .event_loop import EventLoopChoice

T = TypeVar("T")

Api = Literal["ollama", "openai"]
# Client fronts a backend answers itself (passed through instead of translated).
NativeFront = Literal["messages", "responses"]


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 11535
    max_body_mb: float = 64
    body_timeout_s: float = 60  # a request body must arrive within this (slow clients: 408)
    write_timeout_s: float = 60  # a client not reading for this long is dropped
    shutdown_timeout_s: float = 30
    log_format: Literal["text", "json"] = "text"
    log_level: str = "info"
    workers: int = 1
    debug_payloads: bool = False
    access_log: bool = True  # one line per response on the ollamux.access logger
    event_loop: EventLoopChoice = "auto"  # auto: uvloop when installed (``event_loop.py``)


@dataclass
class BackendConfig:
    url: str
    name: str = ""
    api: Api = "ollama"
    max_concurrency: int = 0  # 0: the default for the api (1 for Ollama, 16 for OpenAI)
    api_key: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    native: list[NativeFront] = field(default_factory=list)


@dataclass
class RoutingConfig:
    retries: int = 2
    queue_timeout_s: float = 30
    max_queue: int = 1000
    connect_timeout_s: float = 2
    read_timeout_s: float = 600
    health_interval_s: float = 10
    busy_cooldown_s: float = 2
    probe_timeout_s: float = 2
    probe_backoff_max_s: float = 60


@dataclass
class PluginsConfig:
    autoload: bool = True
    disable: list[str] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigSection:
    """A top-level section a plugin owns: its name, the dataclass of its keys (with their
    defaults), and a check of the built object that raises ``ConfigError`` naming the key.

    ``optional``: an absent section is ``None`` (the feature is off) rather than the
    defaults. ``supplies_backends``: when present, the section finds backends itself, so the
    core does not add its default one."""

    name: str
    schema: type
    validate: Callable[[Any], None] | None = None
    optional: bool = False
    supplies_backends: bool = False


# The sections the core owns; every other top-level key belongs to a plugin.
CORE_SECTIONS = frozenset({"server", "backends", "routing", "plugins"})


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    backends: list[BackendConfig] = field(default_factory=list)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    # The plugins' sections, by name, as their ``ConfigSection.schema`` built them.
    sections: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str, kind: type[T]) -> T:
        """A plugin's section, typed; its defaults when the config has none."""
        value = self.sections.get(name)
        if value is None:
            return kind()
        if not isinstance(value, kind):
            raise TypeError(f"config section {name!r} is a {type(value).__name__}, not {kind}")
        return value

    def __getattr__(self, name: str) -> Any:
        # ``config.tasks`` and the like: a plugin's section read as an attribute, for
        # scripts and tests; plugin code uses ``section`` for the type.
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(name)

    def plugin_config(self, name: str) -> dict[str, Any]:
        """The ``plugins.config.<name>`` mapping for one plugin (empty when absent)."""
        return dict(self.plugins.config.get(name) or {})


DEFAULT_BACKEND_URL = "http://127.0.0.1:11434"

# Keys whose values are secrets: masked by ``ollamux check`` and never logged.
# Passwords inside URLs (``redis://:pw@host``) are masked wherever they appear.
SECRET_KEYS = frozenset({"api_key", "key", "key_sha256", "admin_keys", "headers"})
