"""Build the plugin manager for one app: built-ins, installed entry points, configured files.

A name in ``plugins.disable`` is blocked before anything is imported, so a broken plugin can
always be switched off. Misspelled hook names fail here, at start, not on first request.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .builtins import DEFAULT_PLUGINS, NEEDED_BY, REQUIRED_HOOKS
from .config import Config
from .hooks import PluginManager

ENTRY_POINT_GROUP = "ollamux"


class PluginError(Exception):
    """A plugin could not be loaded, or the loaded set leaves a capability uncovered."""


def build_plugin_manager(
    config: Config, extra: Sequence[tuple[str, object]] = (), *, check: bool = True
) -> PluginManager:
    """The plugin manager for one app: the built-ins, installed entry
    points, ``plugins.load``, then ``extra`` (plugin objects tests register), checked
    (``check=False`` when only asking the plugins for their config sections)."""
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    blocked = set(config.plugins.disable)
    known = {name for name, _ in DEFAULT_PLUGINS}
    for name in blocked:
        pm.set_blocked(name)
    for name, module_path in DEFAULT_PLUGINS:
        if name not in blocked:
            _register(pm, importlib.import_module(module_path), name, "built-in")
    entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    known.update(ep.name for ep in entry_points)
    if config.plugins.autoload:
        for ep in entry_points:
            if ep.name in blocked:
                continue
            dist = ep.dist.name if ep.dist else "?"
            if pm.has_plugin(ep.name):
                if pm.origins.get(ep.name) == "built-in":
                    raise PluginError(
                        f"plugin {ep.name}: entry point {ep.value} ({dist}) takes the name"
                        " of a built-in plugin; give the entry point another name"
                    )
                continue  # the same distribution seen twice on sys.path
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name}: cannot load entry point {ep.value}: {exc}"
                ) from exc
            _register(pm, plugin, ep.name, f"entry point ({dist})")
    for spec in config.plugins.load:
        name = configured_name(spec, entry_points)
        known.add(name)
        if name in blocked:
            continue
        module = _import_configured(spec, name)
        if pm.is_registered(module):
            continue  # also installed as an entry point: one plugin, under one name
        _register(pm, module, name, f"config ({spec})")
    for name, plugin in extra:
        known.add(name)
        _register(pm, plugin, name, "test")
    unknown = sorted(blocked - known)
    if unknown:
        raise PluginError(f"plugins.disable: no plugin named {unknown[0]!r}")
    if not check:
        return pm
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    _check_capabilities(pm)
    return pm


def _register(pm: PluginManager, plugin: object, name: str, origin: str) -> None:
    if pm.has_plugin(name):
        raise PluginError(
            f"plugin {name}: loaded twice (as {pm.origins.get(name, '?')} and as {origin});"
            " load it once"
        )
    try:
        pm.register(plugin, name=name)
    except ValueError:
        raise PluginError(
            f"plugin {name}: the same module is already loaded as"
            f" {pm.get_name(plugin)!r}; load it once"
        ) from None
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name}: {exc}") from exc
    pm.origins[name] = origin
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if impl.hookwrapper or impl.wrapper:
                raise PluginError(f"plugin {name}: {caller.name}: hook wrappers are not supported")
            if caller.name == "ollamux_register_routes" and inspect.iscoroutinefunction(
                impl.function
            ):
                raise PluginError(f"plugin {name}: ollamux_register_routes must not be async")


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec


def configured_name(spec: str, entry_points: Sequence[importlib.metadata.EntryPoint] = ()) -> str:
    """The name a ``plugins.load`` entry registers under: the name of the entry point that
    installs the same module, if one does (a plugin's name does not depend on how it was
    loaded), else the module path, or a file's stem."""
    if _is_file_spec(spec):
        return Path(spec).stem
    for ep in entry_points:
        if ep.value.split(":", 1)[0] == spec:
            return ep.name
    return spec


def _import_configured(spec: str, name: str) -> ModuleType:
    if _is_file_spec(spec):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"plugins.load: no such file {spec}")
        mod_spec = importlib.util.spec_from_file_location(f"ollamux_local_{name}", path)
        if mod_spec is None or mod_spec.loader is None:
            raise PluginError(f"plugins.load: cannot import {spec}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_spec.name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_spec.name]
            raise PluginError(f"plugins.load: {spec} failed to import: {exc}") from exc
        return module
    try:
        return importlib.import_module(spec)
    except Exception as exc:
        raise PluginError(f"plugins.load: cannot import {spec}: {exc}") from exc


def _check_capabilities(pm: PluginManager) -> None:
    for hook_name, provider in REQUIRED_HOOKS.items():
        if not getattr(pm.hook, hook_name).get_hookimpls():
            raise PluginError(
                f"plugins.disable: disabling {provider!r} leaves {hook_name} unimplemented;"
                " load a plugin that provides it"
            )
    for user, needs in NEEDED_BY.items():
        if not pm.has_plugin(user):
            continue
        for hook_name, provider in needs.items():
            if not getattr(pm.hook, hook_name).get_hookimpls():
                raise PluginError(
                    f"plugins.disable: disabling {provider!r} leaves {hook_name} unimplemented,"
                    f" which {user!r} needs; load a plugin that provides it"
                    f" (or disable {user!r} too)"
                )


def describe_plugins(pm: PluginManager) -> list[dict[str, Any]]:
    """Each plugin: name, where it came from, the hooks it implements."""
    rows: list[dict[str, Any]] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "origin": pm.origins.get(name, "?"), "hooks": hooks})
    return rows
