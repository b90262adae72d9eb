"""The ``cors`` built-in plugin (being built)."""

from __future__ import annotations
