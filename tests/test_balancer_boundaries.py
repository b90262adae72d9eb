"""The fleet's owners share state through core objects and hooks, never by importing each
other: no module under ``ollamux/plugins/`` imports another plugin's modules, and the core
imports none (``ollamux.plugins`` itself, the list of built-ins, is core)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import ollamux

ROOT = Path(ollamux.__file__).parent
PLUGINS = ROOT / "plugins"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, relative imports resolved (``from x import y`` yields
    both ``x`` and ``x.y``, as ``y`` may be a submodule)."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _plugin_of(module: str) -> str | None:
    """The plugin a module belongs to (``ollamux.plugins.<plugin>...``), or None."""
    parts = module.split(".")
    if parts[:2] != ["ollamux", "plugins"] or len(parts) < 3:
        return None
    return parts[2]


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


PLUGIN_FILES = sorted(PLUGINS.rglob("*.py"))
CORE_FILES = sorted(ROOT.glob("*.py"))


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_plugin_module_imports_no_other_plugin(path: Path) -> None:
    own = _plugin_of(_module_name(path))
    foreign = {m for m in _imports(path) if _plugin_of(m) not in (None, own) and _is_module(m)}
    assert not foreign


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_the_core_imports_no_plugin_module(path: Path) -> None:
    assert not {m for m in _imports(path) if _plugin_of(m) is not None and _is_module(m)}
