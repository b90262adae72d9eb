"""The ``jobs`` section of the config file: this plugin's keys, defaults and checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import Config, ConfigSection
from ...config_loader import ConfigError


@dataclass
class JobsConfig:
    store: Literal["sqlite", "redis"] = "sqlite"
    workers: int = 4
    sqlite_path: str = "./ollamux.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    default_model: str = "llama3.2:latest"
    max_queued: int = 100000
    max_attempts: int = 3
    lease_s: float = 30  # a claim not renewed this long is handed back (both stores)
    redis_prefix: str = "ollamux:jobs:"
    ttl_s: float = 604800  # ended jobs are deleted this long after they ended
    stuck_after_s: float = 3600  # a job processing longer than this is reported
    sweep_interval_s: float = 60  # how often expiry and the stuck-job report run


def _validate(cfg: JobsConfig) -> None:
    for key in ("lease_s", "ttl_s", "stuck_after_s", "sweep_interval_s"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"jobs.{key}", "must be > 0")
    if cfg.max_attempts < 1:
        raise ConfigError("jobs.max_attempts", "must be >= 1")


SECTION = ConfigSection("jobs", JobsConfig, _validate)


def settings(config: Config) -> JobsConfig:
    return config.section("jobs", JobsConfig)
