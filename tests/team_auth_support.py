"""The example plugin ``plugins/ollamux-team-auth``, loaded from its source file, so the
tests in tests/ run on a clean checkout without the package installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

SOURCE = (
    Path(__file__).parent.parent
    / "plugins"
    / "ollamux-team-auth"
    / "src"
    / "ollamux_team_auth"
    / "__init__.py"
)
# Not the installed package's name: both may be imported in one process.
MODULE_NAME = "tests_ollamux_team_auth"


def team_auth() -> ModuleType:
    """The plugin module (imported once per process)."""
    module = sys.modules.get(MODULE_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, SOURCE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        spec.loader.exec_module(module)
    return module


def team_config(url: str, teams: list[str], admin_team: str | None = None) -> dict[str, Any]:
    """One Ollama backend ``b1``, the built-in auth off, the X-Team plugin's settings."""
    settings: dict[str, Any] = {"teams": teams}
    if admin_team is not None:
        settings["admin_team"] = admin_team
    return {
        "backends": [{"name": "b1", "url": url}],
        "plugins": {"disable": ["auth"], "config": {"team_auth": settings}},
    }
