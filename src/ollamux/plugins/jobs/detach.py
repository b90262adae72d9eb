"""Detaching any inference request: ``Prefer: respond-async`` (RFC 7240).

A chat, generate, completions or embeddings request in either dialect that carries
``Prefer: respond-async`` is answered ``202 Accepted`` at once, ``{"id", "status":
"queued"}`` with ``Location: /jobs/{id}``; a job runs it later as the caller, under the same
id (the job id is the task id). Unlike a job submitted with ``POST /jobs``, it keeps its
``stream`` choice: ``GET /jobs/{id}/result`` then gives the answer in the request's own
dialect and shape (a streamed request's whole stream), and ``GET /tasks/{id}/output``
follows it chunk by chunk while it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...errors import GatewayError
from ...exchange import Exchange, Principal
from ...permissions import JOBS_CANCEL, JOBS_READ
from ...pipeline import parse_json_object
from ...protocol import PREFER
from .model import JobStatus
from .validation import JOB_PATHS, parse_job

if TYPE_CHECKING:
    from .service import JobsService

KIND = "detached"
# Where the answer's bytes are kept in a detached job's result (``result`` is JSON).
STREAM_KEY = "__ollamux_stream__"


def wants_async(exchange: Exchange) -> bool:
    return (
        exchange.request is not None
        and exchange.method == "POST"
        and exchange.path in JOB_PATHS
        and "respond-async" in exchange.headers.get(PREFER, "").lower()
    )


async def detach(exchange: Exchange, service: JobsService) -> web.Response:
    """Queue ``exchange`` as a job of its caller; the 202 answer."""
    body = parse_json_object(exchange.body)  # as the client sent it: rewritten when it runs
    sub = parse_job({"path": exchange.path, "body": body})
    sub.kind = KIND
    job = await service.submit(sub, exchange.principal, job_id=exchange.task_id or None)
    exchange.state["detached"] = True
    headers = {**exchange.response_headers, "Location": f"/jobs/{job.id}"}
    return web.json_response({"id": job.id, "status": "queued"}, status=202, headers=headers)


def stream_result(content_type: str, raw: bytes) -> dict[str, Any]:
    """The stored result of a detached job whose answer is not one JSON document."""
    return {STREAM_KEY: content_type, "body": raw.decode("utf-8", "replace")}


def result_response(result: Any) -> web.Response | None:
    """A kept stream as it was sent; ``None`` for a JSON result."""
    if isinstance(result, dict) and STREAM_KEY in result:
        body = str(result.get("body", "")).encode()
        return web.Response(body=body, headers={"Content-Type": str(result[STREAM_KEY])})
    return None


async def cancel_queued(service: JobsService, job_id: str, principal: Principal) -> bool | None:
    """``DELETE /tasks/{id}`` of a job: cancelled in the store; ``True`` when it was still
    queued (no request runs it), so the tasks plugin writes its CANCELLED document."""
    job = await service.store.get(job_id)
    if job is None or job.status.terminal:
        return None
    gateway = service.gateway
    if not await gateway.allowed(principal, JOBS_READ, job.owner):
        return None
    if not await gateway.allowed(principal, JOBS_CANCEL, job.owner):
        raise GatewayError(403, f"job {job_id!r} may not be cancelled by this key")
    before = await service.store.cancel(job_id)
    if before is None or before.status.terminal:
        return None
    if before.status is JobStatus.PROCESSING:
        service.runner.abort(job_id)
        return None
    return True
