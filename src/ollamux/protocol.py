"""Header names ollamux reads or writes: one place, so no two modules spell them apart."""

from __future__ import annotations

TASK_ID = "X-Task-Id"
"""The task id of a request: given by the client or generated, returned on every answer."""

BACKEND = "X-Ollamux-Backend"
"""Model management (pull, delete, ...): the backend the request is meant for."""

ALL_BACKENDS = "X-Ollamux-All"
"""Model management: send the request to every backend (``true``)."""

KEEP = "X-Ollamux-Keep"
"""A live request's output is kept (``true``): re-readable at ``/tasks/{id}/output``, and the
request runs to its end even when its client disconnects."""

PREFER = "Prefer"
"""``Prefer: respond-async`` detaches an inference request: 202 and a job (RFC 7240)."""

RETRY_AFTER = "Retry-After"

# Headers that are ollamux's own and never reach a backend.
OWN_REQUEST_HEADERS = frozenset({BACKEND.lower(), ALL_BACKENDS.lower(), KEEP.lower()})
