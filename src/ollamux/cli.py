"""The ``ollamux`` command: serve, check, plugins, --version."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from . import __version__, cli_fleet, cli_keys, event_loop
from .config import Config
from .config_loader import ConfigError, backend_from_url, load_config, masked


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ollamux", description="One stable endpoint in front of a fleet of LLM servers."
    )
    parser.add_argument("--version", action="version", version=f"ollamux {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    _config_arg(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 11535)")
    serve.add_argument(
        "--backend",
        action="append",
        metavar="URL",
        help="a backend URL, repeatable; end it in #openai for an OpenAI-compatible server",
    )
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.add_argument("--log-level", help="debug, info, warning, error")
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        default=None,
        help="serve on a non-loopback address with no keys (anyone may use the backends)",
    )

    check = sub.add_parser(
        "check", help="validate a config and its plugins; print the effective config"
    )
    _config_arg(check)

    plugins = sub.add_parser("plugins", help="list plugins and the hooks they implement")
    _config_arg(plugins)
    plugins.add_argument("--json", action="store_true", help="print JSON")
    cli_fleet.add_commands(sub)
    cli_keys.add_parser(sub)
    return parser


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="YAML or TOML config file (or $OLLAMUX_CONFIG)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    server: dict[str, Any] = {}
    for flag in ("host", "port", "workers", "log_level"):
        value = getattr(args, flag, None)
        if value is not None:
            server[flag] = value
    out: dict[str, Any] = {"server": server} if server else {}
    if getattr(args, "allow_anonymous", None):
        out["auth"] = {"allow_anonymous": True}
    if getattr(args, "backend", None):
        out["backends"] = [backend_from_url(u) for u in args.backend]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in cli_fleet.COMMANDS:
        return cli_fleet.run(args)
    if args.command == "keys":
        return cli_keys.run(args)
    try:
        config = load_config(args.config, env=os.environ, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"ollamux: config error: {_one_line(exc)}", file=sys.stderr)
        return 2
    from .plugin_manager import PluginError, build_plugin_manager, describe_plugins

    try:
        pm = build_plugin_manager(config)
    except PluginError as exc:
        print(f"ollamux: plugin error: {_one_line(exc)}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(yaml.safe_dump(masked(config), sort_keys=False), end="")
        return 0
    if args.command == "plugins":
        rows = describe_plugins(pm)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            name_w = max(len(r["name"]) for r in rows)
            origin_w = max(len(r["origin"]) for r in rows)
            for row in rows:
                hooks = ", ".join(row["hooks"]) or "-"
                print(f"{row['name']:<{name_w}}  {row['origin']:<{origin_w}}  {hooks}")
        return 0
    refusal = open_to_anyone(config)
    if refusal:
        print(f"ollamux: {refusal}", file=sys.stderr)
        return 2
    try:
        event_loop.loop_factory(config.server.event_loop)
    except event_loop.EventLoopUnavailable as exc:
        print(f"ollamux: config error: {exc}", file=sys.stderr)
        return 2
    from .server import serve

    try:
        return serve(config, pm, config_path=args.config, overrides=_overrides(args))
    except OSError as exc:  # most often: the port is taken
        host, port = config.server.host, config.server.port
        print(f"ollamux: cannot serve on {host}:{port}: {_one_line(exc)}", file=sys.stderr)
        return 1


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (``0.0.0.0``, ``::``, a name, an
    interface address) is reachable from elsewhere."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_to_anyone(config: Config) -> str:
    """Why serving ``config`` would open the backends to anyone on the network ("" when
    it would not): auth off (no keys) on a non-loopback address, without an opt-in."""
    auth = config.sections.get("auth")
    if auth is None or is_loopback(config.server.host) or auth.allow_anonymous:
        return ""  # (no auth section: the built-in auth is disabled, another plugin decides)
    if auth.keys or any(auth.admin_keys):
        return ""
    return (
        f"refusing to serve on {config.server.host} with no keys (anyone could use the"
        " backends): add keys (ollamux keys new --name NAME, then auth.keys in the config)"
        " or opt in with --allow-anonymous (auth.allow_anonymous: true)"
    )


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
