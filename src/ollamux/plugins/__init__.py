"""The built-in plugins. Each registers under the short name given here and can be
disabled by that name (``plugins.disable``); disabled ones are never imported."""

from __future__ import annotations

# (name, module), in registration order. pluggy calls the most recently registered first,
# so on the way back ``translate`` sees a backend's bytes first, then ``model_rewrite``
# renames models in the client's dialect, then ``auth`` filters listings; on the way in
# ``model_rewrite`` resolves aliases before ``auth`` checks the allow-list.
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
