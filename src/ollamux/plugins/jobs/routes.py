"""HTTP routes: the simple form (``/api/v1/prompt``), the general form (``/jobs``), the page.

Errors are JSON ``{"error": "..."}`` with the status saying what went wrong; a job store
that cannot be used (not reachable, disk full, read-only) is 503 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from math import ceil
from typing import Any

from aiohttp import web

from ... import pipeline
from ...dialect import Dialect
from ...errors import GatewayError
from ...exchange import principal_of
from ...gateway import Gateway
from ...permissions import JOBS_CANCEL, JOBS_READ, JOBS_SUBMIT, PAGE, PROXY
from .detach import result_response
from .model import Job, JobStatus
from .service import JobsService
from .store import StoreUnavailable
from .validation import page_args, parse_job, parse_prompt, result_text

JOBS: web.AppKey[JobsService] = web.AppKey("ollamux_jobs", JobsService)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ASSETS = {"jobs.css": "text/css", "jobs.js": "text/javascript"}

# Seconds a client is asked to wait when the job store cannot be used.
STORE_RETRY_AFTER_S = 5


def add_routes(gateway: Gateway, app: web.Application, service: JobsService) -> None:
    app[JOBS] = service
    r = gateway.routes
    for method, path, handler, action, summary in (
        ("POST", "/api/v1/prompt", submit_prompt, JOBS_SUBMIT, "submit a prompt as a job"),
        ("GET", "/api/v1/prompt/{id}/status", prompt_status, JOBS_READ, "a job's status"),
        ("GET", "/api/v1/prompt/{id}/result", prompt_result, JOBS_READ, "a job's result"),
        ("GET", "/api/v1/prompts", list_prompts, JOBS_READ, "jobs, paged"),
        ("POST", "/jobs", submit_job, JOBS_SUBMIT, "submit any inference request as a job"),
        ("GET", "/jobs", list_jobs, JOBS_READ, "jobs, paged"),
        ("GET", "/jobs/{id}", job_status, JOBS_READ, "one job"),
        ("GET", "/jobs/{id}/result", job_result, JOBS_READ, "a job's result"),
        ("DELETE", "/jobs/{id}", cancel_job, JOBS_CANCEL, "cancel a job"),
        ("POST", "/jobs/{id}/cancel", cancel_job, JOBS_CANCEL, "cancel a job"),
    ):
        r.add(method, path, _errors(handler), action=action, openapi={"summary": summary})
    # GET / is the proxy's for API clients ("Ollama is running"); HEAD / stays with it.
    r.add("GET", "/", root, action=PROXY, allow_head=False)
    r.add("GET", "/list", page, action=PAGE)
    r.add("GET", "/jobs-ui/{name}", asset, action=PAGE)


def _errors(handler: _Handler) -> _Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as err:
            return err.response(Dialect.OLLAMA)
        except StoreUnavailable:
            unavailable = GatewayError(
                503,
                "the job store is unavailable; retry later",
                headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
            )
            return unavailable.response(Dialect.OLLAMA)

    return wrapped


async def _body(request: web.Request) -> dict[str, Any]:
    # A body over server.max_body_mb never gets here: the core answers 413.
    return pipeline.parse_json_object(await request.read())


def _status_filter(request: web.Request) -> JobStatus | None:
    value = request.query.get("status")
    if not value:
        return None
    try:
        return JobStatus(value)
    except ValueError as exc:
        allowed = ", ".join(s.value for s in JobStatus)
        raise GatewayError(400, f"status must be one of {allowed}") from exc


def _paged(key: str, items: list[dict[str, Any]], total: int, page: int, size: int) -> web.Response:
    return web.json_response(
        {
            key: items,
            "page": page,
            "page_size": size,
            "total": total,
            "total_pages": ceil(total / size),
        }
    )


# -- the simple form ---------------------------------------------------------------------------


async def submit_prompt(request: web.Request) -> web.Response:
    service = request.app[JOBS]
    sub = parse_prompt(await _body(request), service.config.default_model)
    job = await service.submit(sub, principal_of(request))
    return web.json_response({"id": job.id})


async def prompt_status(request: web.Request) -> web.Response:
    job = await request.app[JOBS].find(request.match_info["id"], principal_of(request))
    return web.json_response({"id": job.id, "status": str(job.status)})


async def prompt_result(request: web.Request) -> web.Response:
    job = await request.app[JOBS].find(request.match_info["id"], principal_of(request))
    doc: dict[str, Any] = {"id": job.id, "status": str(job.status)}
    if job.status is JobStatus.COMPLETED:
        doc["result"] = result_text(job.result)
    elif job.status.terminal:
        doc["error"] = job.error
    else:
        return web.json_response(doc, status=202)
    return web.json_response(doc)


async def list_prompts(request: web.Request) -> web.Response:
    page_no, size = page_args(request.query, 10)
    found = await request.app[JOBS].page(principal_of(request), None, page_no, size)
    items = [_brief(j) for j in found.jobs]
    return _paged("prompts", items, found.total, page_no, size)


def _brief(job: Job) -> dict[str, Any]:
    doc = job.describe()
    return {k: doc[k] for k in ("id", "status", "created_at", "updated_at")}


# -- the general form --------------------------------------------------------------------------


async def submit_job(request: web.Request) -> web.Response:
    sub = parse_job(await _body(request))
    job = await request.app[JOBS].submit(sub, principal_of(request))
    return web.json_response({"id": job.id, "status": str(job.status)}, status=202)


async def job_status(request: web.Request) -> web.Response:
    job = await request.app[JOBS].find(request.match_info["id"], principal_of(request))
    return web.json_response(job.describe())


async def job_result(request: web.Request) -> web.Response:
    job = await request.app[JOBS].find(request.match_info["id"], principal_of(request))
    if job.status is JobStatus.COMPLETED:
        return result_response(job.result) or web.json_response(job.result)
    doc = {"id": job.id, "status": str(job.status)}
    if not job.status.terminal:
        return web.json_response(doc, status=202)
    return web.json_response({**doc, "error": job.error}, status=409)


async def cancel_job(request: web.Request) -> web.Response:
    job = await request.app[JOBS].cancel(request.match_info["id"], principal_of(request))
    return web.json_response({"id": job.id, "status": str(job.status)})


async def list_jobs(request: web.Request) -> web.Response:
    page_no, size = page_args(request.query, 20)
    status = _status_filter(request)
    found = await request.app[JOBS].page(principal_of(request), status, page_no, size)
    items = [j.describe() for j in found.jobs]
    return _paged("jobs", items, found.total, page_no, size)


# -- the page ----------------------------------------------------------------------------------


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


async def root(request: web.Request) -> web.StreamResponse:
    """Browsers get the page; API clients get Ollama's "Ollama is running" (proxied)."""
    if "text/html" in request.headers.get("Accept", ""):
        return await page(request)
    return await pipeline.handle(request)


async def page(request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    return web.Response(body=_static(name), content_type=_ASSETS[name], charset="utf-8")
