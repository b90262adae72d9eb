"""``ollamux keys new`` prints a fresh key and the config entry that accepts it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import yaml

from ollamux.cli import main
from ollamux.config_loader import build_config
from ollamux.plugins.auth.keys import KeyRing


def _new(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, list[dict[str, Any]]]:
    assert main(["keys", "new", *args]) == 0
    out = capsys.readouterr().out
    first, _, rest = out.partition("\n")
    assert first.startswith("key: ")
    return first[len("key: ") :], yaml.safe_load(rest)


def test_keys_new_prints_a_key_and_its_digest_entry(capsys: pytest.CaptureFixture[str]) -> None:
    key, entries = _new(capsys, "--name", "alice")
    assert entries == [{"name": "alice", "key_sha256": hashlib.sha256(key.encode()).hexdigest()}]
    assert len(key) >= 40


def test_printed_entry_accepts_the_printed_key(capsys: pytest.CaptureFixture[str]) -> None:
    key, entries = _new(capsys)
    config = build_config({"auth": {"keys": entries}})
    entry = KeyRing.from_config(config.auth).lookup(key)
    assert entry is not None and entry.principal.name == "client"


def test_every_new_key_is_different(capsys: pytest.CaptureFixture[str]) -> None:
    assert _new(capsys)[0] != _new(capsys)[0]
