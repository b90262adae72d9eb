"""A reloaded config (SIGHUP) changes keys and CORS without a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ollamux.reload import reload_config
from ollamux.testing import gateway_of
from tests.auth_support import ALICE, BOB, bearer, keyed


async def test_keys_added_by_a_reload_take_effect(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    assert (await client.get("/api/tags")).status == 200
    path = tmp_path / "ollamux.json.yaml"
    new = keyed(url) | {"tasks": {"store": "memory"}, "plugins": {"autoload": False}}
    path.write_text(json.dumps(new))
    assert await reload_config(gateway_of(client), path)
    assert (await client.get("/api/tags")).status == 401
    assert (await client.get("/api/tags", headers=bearer(ALICE))).status == 200


async def test_key_removed_by_a_reload_is_refused(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    assert (await client.get("/api/tags", headers=bearer(BOB))).status == 200
    new = keyed(url, keys=[{"name": "alice", "key": ALICE}])
    new |= {"tasks": {"store": "memory"}, "plugins": {"autoload": False}}
    path = tmp_path / "ollamux.yaml"
    path.write_text(json.dumps(new))
    assert await reload_config(gateway_of(client), path)
    assert (await client.get("/api/tags", headers=bearer(BOB))).status == 401


async def test_cors_turned_on_by_a_reload_answers_preflights(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}
    assert (await client.options("/api/chat", headers=preflight)).status == 401
    new = keyed(url) | {"cors": {"allow_origins": ["https://a.example"]}}
    new |= {"tasks": {"store": "memory"}, "plugins": {"autoload": False}}
    path = tmp_path / "ollamux.yaml"
    path.write_text(json.dumps(new))
    assert await reload_config(gateway_of(client), path)
    assert (await client.options("/api/chat", headers=preflight)).status == 204


async def test_limits_move_to_redis_when_a_reload_configures_it(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path, redis_url: str
) -> None:
    from ollamux.plugins.auth import STATE
    from ollamux.plugins.auth.limits import RedisLimits

    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    new = keyed(url, redis_url=redis_url, redis_prefix="test-auth-reload:")
    new |= {"tasks": {"store": "memory"}, "plugins": {"autoload": False}}
    path = tmp_path / "ollamux.yaml"
    path.write_text(json.dumps(new))
    assert await reload_config(gateway_of(client), path)
    app = gateway_of(client).app
    assert app is not None
    assert isinstance(app[STATE].limits, RedisLimits)
