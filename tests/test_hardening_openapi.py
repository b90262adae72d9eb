"""ollamux publishes an OpenAPI document of its own endpoints."""

from __future__ import annotations

from typing import Any

from tests.auth_support import ADMIN, bearer, keyed


async def test_openapi_document_lists_ollamux_endpoints(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.get("/ollamux/openapi.json", headers=bearer(ADMIN))
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    # The proxied API, and each plugin route's own fragment (tasks, jobs, balancer, metrics).
    assert {
        "/api/chat",
        "/v1/chat/completions",
        "/jobs/{id}",
        "/tasks/status",
        "/ollamux/health",
        "/metrics",
    } <= set(doc["paths"])
    assert doc["paths"]["/ollamux/health"]["get"]["security"] == []
    assert "401" in doc["paths"]["/api/tags"]["get"]["responses"]
