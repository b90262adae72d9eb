"""Fleet model management from the command line, against a running gateway.

``ollamux models`` shows which backend has which model (loaded or only on disk);
``ollamux pull MODEL [--backend NAME | --all]`` pulls with one live progress bar per
backend; ``ollamux rm MODEL ...`` deletes models where they are. Each backend gets its own
request, addressed with the ``X-Ollamux-Backend`` header, so each bar follows its own
stream. The gateway is ``--url`` (or ``$OLLAMUX_URL``); ``--key`` (or
``$OLLAMUX_ADMIN_KEY``) is sent as a Bearer token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import protocol
from .backend import with_latest

COMMANDS = frozenset({"models", "pull", "rm"})
DEFAULT_URL = "http://127.0.0.1:11535"
BACKEND_HEADER = protocol.BACKEND


class FleetError(Exception):
    """Something the user should read: the gateway's answer or why it could not be asked."""


def add_commands(sub: Any) -> None:
    """Register ``models``, ``pull`` and ``rm`` on the ``ollamux`` sub-parser set."""
    models = sub.add_parser("models", help="which backend has which model (a running gateway)")
    _gateway_args(models)
    models.add_argument("--json", action="store_true", help="print JSON")

    pull = sub.add_parser("pull", help="pull a model onto backends, with progress bars")
    _gateway_args(pull)
    pull.add_argument("model")
    where = pull.add_mutually_exclusive_group()
    where.add_argument("--backend", action="append", metavar="NAME", help="repeatable")
    where.add_argument("--all", action="store_true", help="every healthy Ollama backend")

    rm = sub.add_parser("rm", help="delete models from the backends that have them")
    _gateway_args(rm)
    rm.add_argument("model", nargs="+")
    rm.add_argument("--backend", action="append", metavar="NAME", help="only these backends")


def _gateway_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("OLLAMUX_URL", DEFAULT_URL), help="gateway")
    p.add_argument("--key", default=os.environ.get("OLLAMUX_ADMIN_KEY", ""), help="admin key")


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run one fleet command; the exit code is 0 when everything asked for succeeded."""
    console = console or Console()
    try:
        return asyncio.run(_run(args, console))
    except FleetError as exc:
        console.print(f"[red]ollamux: {exc}[/red]", highlight=False)
        return 1


async def _run(args: argparse.Namespace, console: Console) -> int:
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=3600)
    async with aiohttp.ClientSession(
        base_url=args.url.rstrip("/") + "/", headers=headers, timeout=timeout
    ) as session:
        backends = await fetch_backends(session, key_given=bool(args.key))
        if args.command == "models":
            return show_models(backends, console, as_json=args.json)
        if args.command == "pull":
            targets = pull_targets(backends, args.backend, args.all)
            return await pull(session, args.model, targets, console)
        return await remove(session, args.model, backends, args.backend, console)


async def fetch_backends(
    session: aiohttp.ClientSession, *, key_given: bool = True
) -> list[dict[str, Any]]:
    """The gateway's backend table (``/ollamux/backends``, else ``/ollamux/stats``)."""
    for path in ("ollamux/backends", "ollamux/stats"):
        try:
            async with session.get(path) as resp:
                if resp.status == 404:
                    continue
                if resp.status in (401, 403) and not key_given:
                    raise FleetError(
                        f"the gateway needs an admin key ({resp.status}) and none was given:"
                        " pass --key, or set $OLLAMUX_ADMIN_KEY (read when --key is absent)"
                    )
                if resp.status in (401, 403):
                    raise FleetError(f"the gateway refused the admin key ({resp.status})")
                if resp.status != 200:
                    raise FleetError(f"{path} answered {resp.status}")
                doc = await resp.json()
        except aiohttp.ClientError as exc:
            raise FleetError(f"cannot reach the gateway: {exc}") from exc
        found = doc.get("backends") if isinstance(doc, dict) else None
        if isinstance(found, list):
            return [b for b in found if isinstance(b, dict)]
    raise FleetError("the gateway has no backend table (/ollamux/backends)")


def show_models(backends: list[dict[str, Any]], console: Console, as_json: bool) -> int:
    names = [str(b["name"]) for b in backends]
    models = sorted({m for b in backends for m in b.get("models", [])})
    if as_json:
        doc = {
            m: {
                str(b["name"]): "loaded" if m in b.get("loaded_models", []) else "present"
                for b in backends
                if m in b.get("models", [])
            }
            for m in models
        }
        console.print_json(json.dumps(doc))
        return 0
    table = Table(title="models by backend")
    table.add_column("model")
    for b in backends:
        table.add_column(str(b["name"]) + ("" if b.get("healthy", True) else " (down)"))
    for m in models:
        cells = []
        for b in backends:
            if m in b.get("loaded_models", []):
                cells.append("[green]loaded[/green]")
            elif m in b.get("models", []):
                cells.append("present")
            else:
                cells.append("-")
        table.add_row(m, *cells)
    if not names:
        console.print("no backends")
    else:
        console.print(table)
    return 0


def pull_targets(backends: list[dict[str, Any]], named: list[str] | None, every: bool) -> list[str]:
    known = {str(b["name"]): b for b in backends}
    if named:
        unknown = [n for n in named if n not in known]
        if unknown:
            raise FleetError(f"unknown backend {', '.join(unknown)} (known: {', '.join(known)})")
        return named
    if every:
        targets = [
            name
            for name, b in known.items()
            if b.get("healthy", True)
            and not b.get("draining")
            and b.get("api", "ollama") == "ollama"
        ]
        if not targets:
            raise FleetError("no healthy Ollama backend to pull to")
        return targets
    if len(known) == 1:
        return list(known)
    raise FleetError(f"name a backend with --backend NAME or use --all ({', '.join(known)})")


@dataclass
class _PullState:
    """One backend's pull: layer sizes by digest, the last status, how it ended."""

    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    status: str = "starting"
    error: str = ""
    ok: bool = False


async def pull(
    session: aiohttp.ClientSession, model: str, targets: list[str], console: Console
) -> int:
    width = max(len(t) for t in targets)
    progress = Progress(
        TextColumn(f"{{task.fields[backend]:<{width}}}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        DownloadColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )
    states = {t: _PullState() for t in targets}
    with progress:
        ids = {t: progress.add_task("", total=None, backend=t, status="starting") for t in targets}
        await asyncio.gather(
            *(_pull_one(session, model, t, states[t], progress, ids[t]) for t in targets)
        )
    for t in targets:
        st = states[t]
        line = f"{t}: {model} pulled" if st.ok else f"{t}: {model} failed: {st.error}"
        console.print(line, style="green" if st.ok else "red", highlight=False)
    return 0 if all(st.ok for st in states.values()) else 1


async def _pull_one(
    session: aiohttp.ClientSession,
    model: str,
    backend: str,
    st: _PullState,
    progress: Progress,
    task: TaskID,
) -> None:
    try:
        async with session.post(
            "api/pull",
            json={"model": model, "stream": True},
            headers={BACKEND_HEADER: backend},
        ) as resp:
            if resp.status >= 400:
                st.error = _error_text(await resp.read(), resp.status)
            else:
                async for raw in resp.content:
                    _progress_line(raw, st)
                    _show(progress, task, st)
    except (aiohttp.ClientError, TimeoutError) as exc:
        st.error = str(exc) or type(exc).__name__
    if not st.ok and not st.error:
        st.error = f"the stream ended without success (last: {st.status})"
    _show(progress, task, st)


def _progress_line(raw: bytes, st: _PullState) -> None:
    try:
        item = json.loads(raw)
    except ValueError:
        return
    if not isinstance(item, dict):
        return
    if "error" in item:
        st.error = str(item["error"])
        return
    st.status = str(item.get("status", st.status))
    digest = item.get("digest")
    if digest and isinstance(item.get("total"), int):
        st.totals[digest] = item["total"]
        st.done[digest] = int(item.get("completed") or 0)
    if st.status == "success":
        st.ok = True


def _show(progress: Progress, task: TaskID, st: _PullState) -> None:
    total = sum(st.totals.values())
    done = sum(st.done.values())
    if st.ok:
        total = total or 1
        done = total
    status = "[red]" + st.error[:60] + "[/red]" if st.error else st.status
    progress.update(task, total=total or None, completed=done, status=status)


async def remove(
    session: aiohttp.ClientSession,
    models: list[str],
    backends: list[dict[str, Any]],
    named: list[str] | None,
    console: Console,
) -> int:
    failures = 0
    for model in models:
        where = named or [
            str(b["name"]) for b in backends if _has_model(b.get("models", []), model)
        ]
        if not where:
            console.print(f"{model}: not on any backend", style="yellow", highlight=False)
            failures += 1
            continue
        for backend in where:
            async with session.delete(
                "api/delete", json={"model": model}, headers={BACKEND_HEADER: backend}
            ) as resp:
                body = await resp.read()
                if resp.status < 300:
                    console.print(f"{backend}: {model} deleted", style="green", highlight=False)
                else:
                    failures += 1
                    console.print(
                        f"{backend}: {model} not deleted: {_error_text(body, resp.status)}",
                        style="red",
                        highlight=False,
                    )
    return 0 if failures == 0 else 1


def _has_model(models: list[str], model: str) -> bool:
    return model in models or with_latest(model) in models


def _error_text(body: bytes, status: int) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return f"HTTP {status}"
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    return f"{err} (HTTP {status})" if err else f"HTTP {status}"
