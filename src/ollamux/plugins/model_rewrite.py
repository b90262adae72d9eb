"""The ``model_rewrite`` built-in plugin (being built)."""

from __future__ import annotations
