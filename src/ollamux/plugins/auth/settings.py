"""The ``auth`` section of the config file: keys, admin keys, shared limits, and checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...config import Config, ConfigSection
from ...config_loader import ConfigError


@dataclass
class KeyConfig:
    name: str
    key: str = ""
    key_sha256: str = ""
    models: list[str] = field(default_factory=list)
    rpm: int = 0
    max_concurrency: int = 0
    priority: int = 0
    admin: bool = False  # this key may also use the admin endpoints


@dataclass
class AuthConfig:
    keys: list[KeyConfig] = field(default_factory=list)
    admin_keys: list[str] = field(default_factory=list)  # plain keys, or "sha256:<hex>"
    redis_url: str = ""  # share rpm / concurrency limits across instances
    redis_prefix: str = "ollamux:limits:"
    allow_anonymous: bool = False  # serve without keys on a non-loopback address


def _validate(auth: AuthConfig) -> None:
    names: set[str] = set()
    for i, k in enumerate(auth.keys):
        if bool(k.key) == bool(k.key_sha256):
            raise ConfigError(f"auth.keys[{i}]", "give exactly one of key or key_sha256")
        if k.key_sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", k.key_sha256):
            raise ConfigError(f"auth.keys[{i}].key_sha256", "must be 64 hex digits")
        if k.rpm < 0 or k.max_concurrency < 0:
            raise ConfigError(f"auth.keys[{i}]", "rpm and max_concurrency must be >= 0")
        if k.name in names:
            raise ConfigError(f"auth.keys[{i}].name", f"duplicate key name {k.name!r}")
        if k.name == "anonymous" or re.fullmatch(r"admin(-\d+)?", k.name):
            raise ConfigError(
                f"auth.keys[{i}].name",
                f"{k.name!r} is reserved (admin keys and anonymous callers go by it);"
                " choose another name (admin: true makes any key an admin)",
            )
        names.add(k.name)
    for i, value in enumerate(auth.admin_keys):
        if value.startswith("sha256:") and not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", value):
            raise ConfigError(f"auth.admin_keys[{i}]", "sha256: must be followed by 64 hex digits")


SECTION = ConfigSection("auth", AuthConfig, _validate)


def settings(config: Config) -> AuthConfig:
    return config.section("auth", AuthConfig)
