"""The ``jobs`` section of the config file: this plugin's keys, defaults and checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import Config, ConfigSection


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


SECTION = ConfigSection("jobs", JobsConfig)


def settings(config: Config) -> JobsConfig:
    return config.section("jobs", JobsConfig)
