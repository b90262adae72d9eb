"""The ``translate`` built-in plugin (being built)."""

from __future__ import annotations
