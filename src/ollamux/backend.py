"""A backend: one LLM server ollamux can forward to, and its live state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .config import BackendConfig
from .dialect import Dialect
from .redact import mask_url_passwords


@dataclass(eq=False)
class Backend:
    name: str
    url: str
    api: Dialect = Dialect.OLLAMA
    max_concurrency: int = 1
    api_key: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    configured_models: frozenset[str] = frozenset()
    native: frozenset[str] = frozenset()  # fronts it answers itself: "messages", "responses"
    loaded_models: set[str] = field(default_factory=set)
    healthy: bool = True
    draining: bool = False
    discovered: bool = False
    in_flight: int = 0
    failures: int = 0
    last_probe: float | None = None
    last_error: str = ""
    busy_until: float = 0.0

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> Backend:
        return cls(
            name=cfg.name,
            url=cfg.url.rstrip("/"),
            api=Dialect(cfg.api),
            max_concurrency=cfg.max_concurrency,
            api_key=cfg.api_key,
            headers=dict(cfg.headers),
            models=set(cfg.models),
            configured_models=frozenset(cfg.models),
            native=frozenset(cfg.native),
        )

    @property
    def cooling_down(self) -> bool:
        return self.busy_until > time.monotonic()

    def serves(self, model: str | None) -> bool:
        """Whether this backend is known to serve the model (unknown catalog: assume yes)."""
        if model is None or not self.models:
            return True
        return model in self.models or with_latest(model) in self.models

    def auth_headers(self) -> dict[str, str]:
        """Headers ollamux adds to every request to this backend."""
        out = dict(self.headers)
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out

    @property
    def display_url(self) -> str:
        """The URL as shown (backend table, logs): a password in it is ``***``."""
        return mask_url_passwords(self.url)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.display_url,
            "api": str(self.api),
            "healthy": self.healthy,
            "draining": self.draining,
            "discovered": self.discovered,
            "in_flight": self.in_flight,
            "max_concurrency": self.max_concurrency,
            "models": sorted(self.models),
            "loaded_models": sorted(self.loaded_models),
            "last_probe": self.last_probe,
            "failures": self.failures,
            "last_error": self._masked(self.last_error),
        }

    def _masked(self, text: str) -> str:
        """``text`` (an error, which may quote the URL) without the URL's password."""
        text = mask_url_passwords(text)
        password = urlsplit(self.url).password if "@" in self.url else None
        return text.replace(password, "***") if password else text


def with_latest(model: str) -> str:
    """Ollama's implicit tag: ``llama3.2`` is ``llama3.2:latest``."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
