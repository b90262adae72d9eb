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
    "discovery": "balancer",
}

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("balancer", "ollamux.plugins.balancer"),
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

# The core's own rules, registered under this name; it cannot be disabled.
CORE_PLUGIN = "core"
