"""The actions routes declare, and the core's own rule for who owns a task or a job.

Every route states the action it needs when it is registered (``gateway.routes.add``);
before its handler runs, the core asks ``ollamux_permission_allowed`` whether the caller may
do it. Any implementation answering ``False`` refuses; when none objects, the core's own
rule (``owner_rule``, always applied) keeps a caller to its own tasks and jobs, and
anything else is allowed. The built-in ``auth`` plugin is one implementation of the hook.
"""

from __future__ import annotations

from .exchange import Principal

PUBLIC = "public"
"""Anyone, without identifying: health probes."""
PROXY = "proxy"
"""The proxied Ollama and OpenAI API (``/api/*``, ``/v1/*``, ``/``)."""
PAGE = "page"
"""The web pages and their assets: any identified caller."""
MODEL_USE = "model.use"
"""Send a request to a model; the resource is the model name (after rewriting)."""
MODELS_MANAGE = "models.manage"
"""Change what a backend stores: pull, push, create, delete, copy, blobs."""
TASKS_READ = "tasks.read"
"""Read task status; the resource is the task's owner (``EVERYONE``: every owner's)."""
TASKS_CANCEL = "tasks.cancel"
"""Cancel a task; the resource is the task's owner."""
JOBS_SUBMIT = "jobs.submit"
"""Submit an async job."""
JOBS_READ = "jobs.read"
"""Read jobs; the resource is the job's owner (``EVERYONE``: every owner's)."""
JOBS_CANCEL = "jobs.cancel"
"""Cancel a job; the resource is the job's owner."""
ADMIN = "admin"
"""The operator's endpoints: backends, drain, stats, the dashboard, the OpenAPI document."""
METRICS = "metrics"
"""``GET /metrics``."""

# Actions whose resource is an owner: a caller may act on its own, an admin on anyone's.
# Without a resource (the route's own check) they are allowed to any caller.
OWNED = frozenset({TASKS_READ, TASKS_CANCEL, JOBS_READ, JOBS_CANCEL})
EVERYONE = "*"
"""The resource of an owned action over every owner's tasks or jobs (a full listing)."""


def owner_rule(principal: Principal, action: str, resource: str | None) -> bool:
    """The ownership rule: ``resource`` names the owner of a task or job (``EVERYONE``:
    every owner's); a caller may act on its own, an admin on anyone's."""
    if action not in OWNED or resource is None or principal.admin:
        return True
    return resource == principal.name
