"""The ``model_rewrite`` built-in plugin: model aliases and a listing suffix.

``models.aliases`` maps names clients use to names backends serve; ``models.suffix``
(e.g. ``:proxy``) is added to every listed name and stripped from incoming requests. The
client sees the name it asked for in every answer, in its own dialect (this plugin's
response transform runs after ``translate``'s). With neither configured both hooks return
``None`` at once; disable the plugin by name to turn it off entirely, or replace it with
your own ``ollamux_rewrite_request``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Config, ConfigSection
from ..hookspecs import hookimpl
from ..listing import LISTING_PATHS
from ..transforms import LineSplitter, ResponseTransform, WholeJsonTransform

if TYPE_CHECKING:
    from ..exchange import Exchange, ResponseHead

STATE = "model_rewrite"
_MODEL_PATH = "/v1/models/"


@dataclass
class ModelsConfig:
    """The ``models`` section: aliases and a display suffix."""

    aliases: dict[str, str] = field(default_factory=dict)
    suffix: str = ""


@hookimpl
def ollamux_config_section() -> ConfigSection:
    return ConfigSection("models", ModelsConfig)


def settings(config: Config) -> ModelsConfig:
    return config.section("models", ModelsConfig)


def resolve(name: str, models: ModelsConfig) -> str:
    """The backend's name for what a client asked: suffix stripped, then alias resolved."""
    if models.suffix and name.endswith(models.suffix) and len(name) > len(models.suffix):
        name = name[: -len(models.suffix)]
    return models.aliases.get(name, name)


def _active(models: ModelsConfig) -> bool:
    return bool(models.aliases or models.suffix)


@hookimpl
def ollamux_rewrite_request(exchange: Exchange) -> None:
    models = settings(exchange.gateway.config)
    name = exchange.model
    if name is None or not _active(models):
        return
    resolved = resolve(name, models)
    if resolved == name:
        return
    exchange.state[STATE] = (name, resolved)
    exchange.set_model(resolved)
    if exchange.path.startswith(_MODEL_PATH):
        exchange.path = _MODEL_PATH + resolved


@hookimpl(trylast=True)  # last: the names it shows are the ones the client sees
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    models = settings(exchange.gateway.config)
    if not _active(models):
        return None
    if (exchange.method, exchange.path) in LISTING_PATHS:
        return ListingNames(models)
    renamed = exchange.state.get(STATE)
    if renamed is None:
        return None
    keys = ("model", "id") if exchange.path.startswith(_MODEL_PATH) else ("model",)
    return ModelNames(renamed[1], renamed[0], keys)


class ModelNames(ResponseTransform):
    """Shows the client the name it asked for wherever the answer names the model.

    Works on whole lines (split reads are reassembled) with a byte replacement of the
    ``"model": "<name>"`` pair, so a stream costs no JSON parsing here.
    """

    def __init__(self, upstream: str, client: str, keys: tuple[str, ...]) -> None:
        self.lines = LineSplitter()
        self.pairs: list[tuple[bytes, bytes]] = []
        old, new = json.dumps(upstream).encode(), json.dumps(client).encode()
        for key in keys:
            for sep in (b":", b": "):
                prefix = b'"' + key.encode() + b'"' + sep
                self.pairs.append((prefix + old, prefix + new))

    def head(self, head: ResponseHead) -> ResponseHead:
        head.headers.popall("Content-Length", None)
        return head

    def _rename(self, line: bytes) -> bytes:
        for old, new in self.pairs:
            if old in line:
                line = line.replace(old, new)
        return line

    def feed(self, data: bytes) -> bytes:
        return b"".join([self._rename(line) + b"\n" for line in self.lines.feed(data)])

    def end(self) -> bytes:
        return b"".join([self._rename(line) for line in self.lines.flush()])


class ListingNames(WholeJsonTransform):
    """Listings with the suffix on every name and each alias listed as a model of its own."""

    def __init__(self, models: ModelsConfig) -> None:
        super().__init__()
        self.models = models

    def rewrite(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            if isinstance(obj.get("models"), list):
                obj["models"] = self._entries(obj["models"], ("name", "model"))
            if isinstance(obj.get("data"), list):
                obj["data"] = self._entries(obj["data"], ("id",))
        return obj

    def _entries(self, entries: list[Any], keys: tuple[str, ...]) -> list[Any]:
        by_name = {e.get(keys[0]): e for e in entries if isinstance(e, dict)}
        out = list(entries)
        for alias, target in self.models.aliases.items():
            entry = by_name.get(target)
            if entry is not None and alias not in by_name:
                out.append({**entry, **{k: alias for k in keys if k in entry}})
        suffix = self.models.suffix
        if suffix:
            out = [
                {**e, **{k: f"{e[k]}{suffix}" for k in keys if isinstance(e.get(k), str)}}
                if isinstance(e, dict)
                else e
                for e in out
            ]
        return out
