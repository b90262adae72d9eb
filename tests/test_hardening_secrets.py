"""No secret ever shows in logs, error answers, or ``ollamux check`` output."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollamux.cli import main
from ollamux.config_loader import build_config
from ollamux.plugins.auth.keys import KeyRing
from tests.auth_support import ADMIN, ALICE, BACKEND_KEY, BOB, bearer, keyed

SECRETS = (ALICE, BOB, ADMIN, BACKEND_KEY)


async def test_secrets_are_absent_from_logs_and_answers(
    gateway_client: Any, fake_openai: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _fake, url = fake_openai
    config = keyed(url, api="openai")
    config["backends"][0]["api_key"] = BACKEND_KEY
    answers: list[str] = []
    with caplog.at_level(logging.DEBUG):
        client = await gateway_client(config)
        body = {"model": "qwen2.5-7b", "messages": []}
        for headers in (
            bearer(ALICE),
            bearer(BOB),
            bearer(ADMIN),
            bearer(ALICE + "x"),
            {"X-API-Key": BOB[:-1]},
        ):
            for path in ("/v1/chat/completions", "/v1/models/gpt-x", "/ollamux/backends"):
                resp = await client.post(path, json=body, headers=headers)
                answers.append(str(resp.headers) + await resp.text())
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in SECRETS:
        assert secret not in logged
        assert all(secret not in a for a in answers)


def test_check_output_masks_every_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ollamux.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "backends": [
                    {"url": "http://127.0.0.1:9", "api_key": BACKEND_KEY, "headers": {"X-T": BOB}}
                ],
                "auth": {
                    "keys": [{"name": "alice", "key": ALICE}],
                    "admin_keys": [ADMIN],
                    "redis_url": "redis://:hunter2@127.0.0.1:6379/0",
                },
            }
        )
    )
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    for secret in (*SECRETS, "hunter2", hashlib.sha256(ALICE.encode()).hexdigest()):
        assert secret not in out
    assert "name: alice" in out


def test_key_ring_keeps_only_digests_of_configured_keys() -> None:
    config = build_config({"auth": {"keys": [{"name": "a", "key": ALICE}], "admin_keys": [ADMIN]}})
    ring = KeyRing.from_config(config.auth)
    assert config.auth.keys[0].key == ""
    assert config.auth.keys[0].key_sha256 == hashlib.sha256(ALICE.encode()).hexdigest()
    assert ADMIN not in str(config.auth.admin_keys)
    assert ring.lookup(ALICE) is not None and ring.lookup(ADMIN) is not None


def test_admin_key_given_as_digest_is_accepted() -> None:
    digest = hashlib.sha256(ADMIN.encode()).hexdigest()
    config = build_config({"auth": {"admin_keys": [f"sha256:{digest}"]}})
    entry = KeyRing.from_config(config.auth).lookup(ADMIN)
    assert entry is not None and entry.principal.admin


def test_unset_admin_key_variable_opens_nothing() -> None:
    config = build_config({"auth": {"admin_keys": [""]}})
    ring = KeyRing.from_config(config.auth)
    assert not ring.enabled
    assert ring.lookup("") is None
