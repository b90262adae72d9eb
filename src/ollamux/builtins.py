"""The built-in plugins: the short name each registers under, and its module.

Each can be disabled by that name (``plugins.disable``); disabled ones are never imported.
The order carries no meaning: hook implementations that must run before or after others
say so themselves (``tryfirst`` / ``trylast``).
"""

from __future__ import annotations

# The config sections each built-in declares (``ollamux_config_section``): only their
# names, so that a disabled built-in's section is ignored rather than unknown.
BUILTIN_SECTIONS: dict[str, str] = {
    "tasks": "tasks",
    "jobs": "jobs",
    "auth": "auth",
    "cors": "cors",
    "models": "model_rewrite",
    "discovery": "health",
}

# The fleet has four owners (docs/routing.md): ``balancer`` (slots, the wait queue,
# ``ollamux_select_backend``), ``selection`` (the default selection policy), ``health``
# (probes, discovery, health learnt from attempts) and ``fleet_admin`` (the backend table,
# health summary, drain). None imports another; they share ``ollamux.fleet``.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("balancer", "ollamux.plugins.balancer"),
    ("selection", "ollamux.plugins.selection"),
    ("health", "ollamux.plugins.health"),
    ("fleet_admin", "ollamux.plugins.fleet_admin"),
    ("tasks", "ollamux.plugins.tasks"),
    ("jobs", "ollamux.plugins.jobs"),
    ("metrics", "ollamux.plugins.metrics"),
    ("cors", "ollamux.plugins.cors"),
    ("auth", "ollamux.plugins.auth"),
    ("model_rewrite", "ollamux.plugins.model_rewrite"),
    ("translate", "ollamux.plugins.translate"),
)

# Hooks the request path cannot do without, and the built-in that normally provides each.
REQUIRED_HOOKS: dict[str, str] = {
    "ollamux_select_backend": "balancer",
}

# Hooks a plugin relies on while it is enabled: plugin -> {hook: the built-in that normally
# provides it}. The balancer asks ``ollamux_selection_policy`` for its policy.
NEEDED_BY: dict[str, dict[str, str]] = {
    "balancer": {"ollamux_selection_policy": "selection"},
}
