"""ollamux: one stable endpoint in front of a fleet of Ollama and OpenAI-compatible servers."""

from __future__ import annotations

from .errors import GatewayError
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["GatewayError", "__version__", "hookimpl"]
