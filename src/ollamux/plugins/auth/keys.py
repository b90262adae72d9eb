"""The key ring: which API keys exist, whom each belongs to, and how a request shows one.

Keys are kept only as SHA-256 digests. A presented key is hashed once and looked up in a
dict keyed by digest; the match is then confirmed with ``hmac.compare_digest``. Timing can
at most reveal something about the digest of what the caller sent, never about a stored key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ...exchange import Principal
from .settings import AuthConfig

_SHA_PREFIX = "sha256:"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key: the principal it stands for and its limits (0 = unlimited)."""

    principal: Principal
    digest: bytes
    rpm: int = 0
    max_concurrency: int = 0


class KeyRing:
    """Every configured key by digest, and by name (for jobs, which run as their owner)."""

    __slots__ = ("by_digest", "by_name")

    def __init__(self) -> None:
        self.by_digest: dict[bytes, KeyEntry] = {}
        self.by_name: dict[str, KeyEntry] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    @classmethod
    def from_config(cls, auth: AuthConfig, share: Callable[[int], int] | None = None) -> KeyRing:
        """Hash every key; the plain values in ``auth`` are replaced by their digests.
        ``share`` gives this worker process its part of a key's limits (``--workers``)."""
        ring = cls()
        for k in auth.keys:
            d = digest(k.key) if k.key else bytes.fromhex(k.key_sha256)
            k.key, k.key_sha256 = "", d.hex()
            principal = Principal(
                name=k.name,
                admin=k.admin,
                models=tuple(k.models),
                priority=k.priority,
                authenticated=True,
            )
            rpm, most = k.rpm, k.max_concurrency
            if share is not None:
                rpm, most = share(rpm) if rpm else 0, share(most) if most else 0
            ring._add(KeyEntry(principal, d, rpm, most))
        hashed: list[str] = []
        for i, value in enumerate(auth.admin_keys):
            if not value:
                continue  # an unset ${VAR}: no key, rather than an empty one that matches ""
            d = (
                bytes.fromhex(value[len(_SHA_PREFIX) :])
                if value.startswith(_SHA_PREFIX)
                else digest(value)
            )
            hashed.append(_SHA_PREFIX + d.hex())
            known = ring.by_digest.get(d)
            if known is None:
                name = "admin" if i == 0 else f"admin-{i + 1}"
                ring._add(KeyEntry(Principal(name=name, admin=True, authenticated=True), d))
            elif not known.principal.admin:
                p = known.principal
                admin = Principal(p.name, True, p.models, p.priority, authenticated=True)
                ring._add(KeyEntry(admin, d, known.rpm, known.max_concurrency))
        auth.admin_keys = hashed
        return ring

    def _add(self, entry: KeyEntry) -> None:
        self.by_digest[entry.digest] = entry
        self.by_name[entry.principal.name] = entry

    def lookup(self, key: str) -> KeyEntry | None:
        d = digest(key)
        entry = self.by_digest.get(d)
        if entry is None or not hmac.compare_digest(entry.digest, d):
            return None
        return entry


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: ``Authorization: Bearer``, ``X-API-Key``, or the password
    of ``Authorization: Basic`` (so a browser can open the web page)."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            return value
        if scheme == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2] or None
    return headers.get("X-API-Key") or None
