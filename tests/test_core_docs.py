"""The docs keep up with the code: every hook and every config key is documented."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from ollamux import hookspecs
from ollamux.config import Config

DOCS = Path(__file__).parent.parent / "docs"
HOOKS = sorted(n for n in vars(hookspecs) if n.startswith("ollamux_"))


def _signature(name: str) -> str:
    """``def ollamux_x(a: A, b: B) -> R`` as written in hookspecs.py."""
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_section_with_its_exact_signature(name: str) -> None:
    text = (DOCS / "hooks.md").read_text()
    assert f"\n### {name}\n" in text
    section = text.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
    assert _signature(name) in section


def test_hooks_md_documents_no_hook_that_does_not_exist() -> None:
    documented = re.findall(r"^### (ollamux_\w+)$", (DOCS / "hooks.md").read_text(), re.M)
    assert sorted(documented) == HOOKS


def _keys(tp: Any, prefix: str) -> Iterator[str]:
    hints = get_type_hints(tp)
    for f in dataclasses.fields(tp):
        key = f"{prefix}.{f.name}" if prefix else f.name
        hint = hints[f.name]
        inner = [a for a in get_args(hint) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(hint):
            yield from _keys(hint, key)
        elif inner:  # list[Dataclass] or Dataclass | None
            item = f"{key}[]" if "list" in str(hint) else key
            if item != key:
                yield key
            yield from _keys(inner[0], item)
        else:
            yield key


def _all_keys() -> Iterator[str]:
    """The core's keys, and every key of every section a built-in plugin declares."""
    from ollamux.config_loader import build_config, plugin_sections

    for key in _keys(Config, ""):
        if not key.startswith("sections"):
            yield key
    for section in plugin_sections(build_config({})):
        yield section.name
        yield from _keys(section.schema, section.name)


CONFIG_KEYS = list(_all_keys())


@pytest.mark.parametrize("key", CONFIG_KEYS)
def test_every_config_key_is_documented(key: str) -> None:
    text = "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))
    assert f"`{key}`" in text


def test_hooks_md_states_the_builtins_registration_order() -> None:
    from ollamux.builtins import DEFAULT_PLUGINS

    order = ", ".join(name for name, _module in DEFAULT_PLUGINS)
    text = " ".join((DOCS / "hooks.md").read_text().split())
    assert f"`{order}`" in text
