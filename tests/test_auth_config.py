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
