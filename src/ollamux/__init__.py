"""ollamux: one stable endpoint in front of a fleet of Ollama and OpenAI-compatible servers."""

from __future__ import annotations

from .config import ConfigSection
from .errors import GatewayError
from .exchange import Principal, principal_of
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "ConfigSection",
    "GatewayError",
    "Principal",
    "__version__",
    "hookimpl",
    "principal_of",
]
