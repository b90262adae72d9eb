"""``ollamux keys new [--name N]``: a fresh random API key and its config line.

The key is printed once, for the caller to hand out; the config only ever needs its
SHA-256 digest (``key_sha256``), so the key itself is never stored by ollamux.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets

KEY_PREFIX = "olx-"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="make API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    new = actions.add_parser("new", help="print a new random key and its auth.keys entry")
    new.add_argument("--name", default="client", help="the key's name (default: client)")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def run(args: argparse.Namespace) -> int:
    key = new_key()
    sha = hashlib.sha256(key.encode()).hexdigest()
    print(f"key: {key}")
    print("# give the key to its user; add this to auth.keys in the config:")
    print(f"- name: {args.name}")
    print(f"  key_sha256: {sha}")
    return 0
