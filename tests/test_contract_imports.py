"""The contract, read from the source: the built-in plugins talk to each other only through
hooks and the core. No plugin imports another plugin's modules or reads another plugin's
config section, and the core imports no plugin.

A plugin is a top-level module or sub-package of ``src/ollamux/plugins/``; relative imports
are resolved against the importing module's package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from ollamux.builtins import BUILTIN_SECTIONS

SRC = Path(__file__).parent.parent / "src"
PLUGINS = SRC / "ollamux" / "plugins"

# Each built-in's own config section, and the plugin that owns it.
SECTION_OWNERS = BUILTIN_SECTIONS
# Names a ``Config`` goes by: ``gateway.config``, ``self.config``, and the ``old``/``new`` of
# ``ollamux_config_reloaded``.
CONFIG_NAMES = frozenset({"config", "cfg", "conf", "new", "old", "new_config", "old_config"})


def plugin_names() -> list[str]:
    return sorted(
        p.stem if p.is_file() else p.name
        for p in PLUGINS.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()
    )


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def plugin_of(module: str) -> str | None:
    """``ollamux.plugins.auth.keys`` -> ``auth``; ``None`` outside ``ollamux.plugins.<x>``."""
    parts = module.split(".")
    if parts[:2] == ["ollamux", "plugins"] and len(parts) > 2:
        return parts[2]
    return None


def imported_modules(path: Path, source: str | None = None) -> Iterator[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in a file, relative ones resolved;
    for ``from X import a`` both ``X`` and ``X.a`` (``a`` may be a sub-module)."""
    tree = ast.parse(source if source is not None else path.read_text(), str(path))
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and _last_name(node.func) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def config_sections_read(source: str) -> Iterator[tuple[int, str]]:
    """``(line, section)`` of each ``<config>.<section>`` read, and of each
    ``plugin_config("<name>")`` call (its section is the plugin's name)."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in SECTION_OWNERS
            and _last_name(node.value) in CONFIG_NAMES
        ):
            yield node.lineno, node.attr
        elif (
            isinstance(node, ast.Call)
            and _last_name(node.func) == "plugin_config"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def plugin_files() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if p != PLUGINS / "__init__.py")


def cross_plugin_imports(path: Path, source: str | None = None) -> list[str]:
    own = plugin_of(module_name(path))
    found = []
    for line, module in imported_modules(path, source):
        other = plugin_of(module)
        if other is not None and other != own:
            found.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    return found


def foreign_config_reads(path: Path, source: str | None = None) -> list[str]:
    own = plugin_of(module_name(path))
    names = set(plugin_names())
    found = []
    for line, section in config_sections_read(source if source is not None else path.read_text()):
        owner = SECTION_OWNERS.get(section, section if section in names else None)
        if owner is not None and owner != own:
            found.append(f"{path.relative_to(SRC)}:{line} reads {owner}'s config ({section})")
    return found


def test_the_builtin_plugins_are_found() -> None:
    from ollamux.builtins import DEFAULT_PLUGINS

    assert plugin_names() == sorted(name for name, _module in DEFAULT_PLUGINS)
    assert len(plugin_files()) > len(plugin_names())


def test_no_plugin_imports_another_plugins_modules() -> None:
    found = [v for path in plugin_files() for v in cross_plugin_imports(path)]
    assert found == []


def test_no_plugin_reads_another_plugins_config_section() -> None:
    found = [v for path in plugin_files() for v in foreign_config_reads(path)]
    assert found == []


def test_no_core_module_imports_a_plugin() -> None:
    found = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted((SRC / "ollamux").glob("*.py"))
        for line, module in imported_modules(path)
        if plugin_of(module) is not None
    ]
    assert found == []


def test_the_checks_see_relative_imports_and_config_reads() -> None:
    """The checks above are not vacuous: they catch each kind of breach in a sample."""
    sample = PLUGINS / "tasks" / "sample.py"
    source = (
        "from ..auth.keys import KeyRing\n"
        "from .. import jobs\n"
        "from ...plugins.balancer import fleet\n"
        "from . import store\n"
        "from ...config import TasksConfig\n"
        "import ollamux.plugins.cors\n"
        "def f(gateway, new):\n"
        "    gateway.config.tasks, gateway.config.auth, new.discovery\n"
        "    gateway.plugin_config('translate')\n"
    )
    assert cross_plugin_imports(sample, source) == [
        "ollamux/plugins/tasks/sample.py:1 imports ollamux.plugins.auth.keys",
        "ollamux/plugins/tasks/sample.py:1 imports ollamux.plugins.auth.keys.KeyRing",
        "ollamux/plugins/tasks/sample.py:2 imports ollamux.plugins.jobs",
        "ollamux/plugins/tasks/sample.py:3 imports ollamux.plugins.balancer",
        "ollamux/plugins/tasks/sample.py:3 imports ollamux.plugins.balancer.fleet",
        "ollamux/plugins/tasks/sample.py:6 imports ollamux.plugins.cors",
    ]
    assert sorted(foreign_config_reads(sample, source)) == [
        "ollamux/plugins/tasks/sample.py:8 reads auth's config (auth)",
        "ollamux/plugins/tasks/sample.py:8 reads health's config (discovery)",
        "ollamux/plugins/tasks/sample.py:9 reads translate's config (translate)",
    ]
