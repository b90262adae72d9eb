"""The ``tasks`` config section: defaults and refusals."""

from __future__ import annotations

import pytest

from ollamux.config_loader import ConfigError, build_config


def test_defaults_keep_the_published_redis_key_and_sqlite_store() -> None:
    tasks = build_config({}).tasks
    assert (tasks.store, tasks.redis_prefix) == ("sqlite", "ts:ollama:")
    assert (tasks.ttl_running_s, tasks.ttl_done_s, tasks.heartbeat_s) == (3600, 86400, 10)


@pytest.mark.parametrize("key", ["ttl_running_s", "ttl_done_s", "heartbeat_s", "sweep_interval_s"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_durations_are_refused_naming_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"tasks": {key: value}})
    assert f"tasks.{key}" in str(caught.value)


def test_unknown_store_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"tasks": {"store": "postgres"}})
    assert "tasks.store" in str(caught.value)
