"""The ``discovery`` section of the config file (optional: absent, no discovery)."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import Api, Config, ConfigSection
from ...config_loader import parse_port_range


@dataclass
class DiscoveryConfig:
    host: str = "127.0.0.1"
    ports: str = ""
    interval_s: float = 5
    api: Api = "ollama"
    probe_timeout_s: float = 1.0
    max_concurrency: int = 0  # 0: the default for the api (1 for Ollama, 16 for OpenAI)


def _validate(cfg: DiscoveryConfig) -> None:
    parse_port_range(cfg.ports, "discovery.ports")


SECTION = ConfigSection(
    "discovery", DiscoveryConfig, _validate, optional=True, supplies_backends=True
)


def discovery(config: Config) -> DiscoveryConfig | None:
    """The discovery settings, or ``None`` when the config has no ``discovery`` section."""
    value = config.sections.get("discovery")
    return value if isinstance(value, DiscoveryConfig) else None
