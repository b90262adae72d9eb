"""A bad auth section is refused at start with the key that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from ollamux.config_loader import ConfigError, build_config


@pytest.mark.parametrize(
    ("auth", "key"),
    [
        ({"keys": [{"name": "a"}]}, "auth.keys[0]"),
        ({"keys": [{"name": "a", "key": "x", "key_sha256": "0" * 64}]}, "auth.keys[0]"),
        ({"keys": [{"name": "a", "key_sha256": "xyz"}]}, "auth.keys[0].key_sha256"),
        ({"keys": [{"name": "a", "key": "x", "rpm": -1}]}, "auth.keys[0]"),
        ({"keys": [{"name": "a", "key": "x"}, {"name": "a", "key": "y"}]}, "auth.keys[1].name"),
        ({"admin_keys": ["sha256:nothex"]}, "auth.admin_keys[0]"),
        # The admin principal's names and the anonymous caller's cannot be taken by a key.
        ({"keys": [{"name": "admin", "key": "x"}]}, "auth.keys[0].name"),
        ({"keys": [{"name": "admin-2", "key": "x"}]}, "auth.keys[0].name"),
        ({"keys": [{"name": "anonymous", "key": "x"}]}, "auth.keys[0].name"),
    ],
)
def test_bad_auth_config_names_the_key(auth: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"auth": auth})
    assert info.value.key == key


def test_body_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"server": {"body_timeout_s": 0}})
    assert info.value.key == "server.body_timeout_s"


def test_an_unknown_top_level_section_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"atuh": {"keys": []}})
    assert info.value.key == "atuh"


def test_a_plugin_section_is_validated_by_its_plugin() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"tasks": {"ttl_done_s": 0}})
    assert info.value.key == "tasks.ttl_done_s"


def test_a_disabled_builtins_section_is_not_read() -> None:
    config = build_config({"plugins": {"disable": ["cors"]}, "cors": {"allow_origins": 5}})
    assert "cors" not in config.sections
