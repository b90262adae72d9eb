"""The configuration schema: one frozen-ish dataclass per section of the config file.

Every key a user may write is declared here, with its default. ``config_loader`` turns
files, environment and flags into these objects and reports unknown or ill-typed keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Api = Literal["ollama", "openai"]


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


@dataclass
class BackendConfig:
    url: str
    name: str = ""
    api: Api = "ollama"
    max_concurrency: int = 0  # 0: the default for the api (1 for Ollama, 16 for OpenAI)
    api_key: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)


@dataclass
class DiscoveryConfig:
    host: str = "127.0.0.1"
    ports: str = ""
    interval_s: float = 5
    api: Api = "ollama"
    probe_timeout_s: float = 1.0
    max_concurrency: int = 0  # 0: the default for the api (1 for Ollama, 16 for OpenAI)


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
class ModelsConfig:
    aliases: dict[str, str] = field(default_factory=dict)
    suffix: str = ""


@dataclass
class TasksConfig:
    store: Literal["sqlite", "redis", "memory"] = "sqlite"
    sqlite_path: str = "./ollamux.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    ttl_running_s: float = 3600
    ttl_done_s: float = 86400
    heartbeat_s: float = 10
    redis_prefix: str = "ts:ollama:"  # status documents live at <redis_prefix><task_id>
    sweep_interval_s: float = 60  # how often expired tasks are deleted (SQLite, memory)


@dataclass
class JobsConfig:
    store: Literal["sqlite", "redis"] = "sqlite"
    workers: int = 4
    sqlite_path: str = "./ollamux.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    default_model: str = "llama3.2:latest"
    max_queued: int = 100000
    max_attempts: int = 3
    lease_s: float = 60
    redis_prefix: str = "ollamux:jobs:"


@dataclass
class KeyConfig:
    name: str
    key: str = ""
    key_sha256: str = ""
    models: list[str] = field(default_factory=list)
    rpm: int = 0
    max_concurrency: int = 0
    priority: int = 0
    admin: bool = False  # this key may also use the admin endpoints


@dataclass
class AuthConfig:
    keys: list[KeyConfig] = field(default_factory=list)
    admin_keys: list[str] = field(default_factory=list)  # plain keys, or "sha256:<hex>"
    redis_url: str = ""  # share rpm / concurrency limits across instances
    redis_prefix: str = "ollamux:limits:"
    allow_anonymous: bool = False  # serve without keys on a non-loopback address


@dataclass
class CorsConfig:
    allow_origins: list[str] = field(default_factory=list)
    allow_methods: list[str] = field(
        default_factory=lambda: ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]
    )
    allow_headers: list[str] = field(default_factory=lambda: ["*"])
    max_age_s: int = 600


@dataclass
class PluginsConfig:
    autoload: bool = True
    disable: list[str] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    backends: list[BackendConfig] = field(default_factory=list)
    discovery: DiscoveryConfig | None = None
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    cors: CorsConfig = field(default_factory=CorsConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)

    def plugin_config(self, name: str) -> dict[str, Any]:
        """The ``plugins.config.<name>`` mapping for one plugin (empty when absent)."""
        return dict(self.plugins.config.get(name) or {})


DEFAULT_BACKEND_URL = "http://127.0.0.1:11434"

# Keys whose values are secrets: masked by ``ollamux check`` and never logged.
# Passwords inside URLs (``redis://:pw@host``) are masked wherever they appear.
SECRET_KEYS = frozenset({"api_key", "key", "key_sha256", "admin_keys", "headers"})
