"""The ``tasks`` section of the config file: this plugin's keys, defaults and checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import Config, ConfigSection
from ...config_loader import ConfigError


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
    output_max_mb: float = 64  # kept output (detached, jobs, X-Ollamux-Keep) per task, at most


def _validate(cfg: TasksConfig) -> None:
    for key in ("ttl_running_s", "ttl_done_s", "heartbeat_s", "sweep_interval_s", "output_max_mb"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"tasks.{key}", "must be > 0")


SECTION = ConfigSection("tasks", TasksConfig, _validate)


def settings(config: Config) -> TasksConfig:
    return config.section("tasks", TasksConfig)
