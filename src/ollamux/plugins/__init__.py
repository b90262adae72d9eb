"""The built-in plugins, one module or sub-package each. They use the same public
``ollamux.hookimpl`` as third-party plugins, import no other plugin, and read only their own
config section; ``ollamux.builtins`` names them."""
