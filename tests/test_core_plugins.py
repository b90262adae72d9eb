"""Plugin loading: built-ins, plugins.load, plugins.disable, plugins.config, entry points."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ollamux import hookimpl
from ollamux.builtins import DEFAULT_PLUGINS
from ollamux.cli import main
from ollamux.config_loader import build_config
from ollamux.plugin_manager import PluginError, build_plugin_manager, describe_plugins
from ollamux.testing import test_config

REQUEST_LOG_DIST = "ollamux-request-log"

ECHO_CONFIG_PLUGIN = """
from aiohttp import web
from ollamux import hookimpl

@hookimpl
async def ollamux_respond(exchange):
    if exchange.path == "/api/plugin-config":
        return web.json_response(exchange.gateway.plugin_config("{name}"))
    return None
"""

SELECTOR_PLUGIN = """
from ollamux import hookimpl

@hookimpl
def ollamux_select_backend(exchange):
    return None
"""


def _pm(tmp_path: Path, data: dict[str, Any]) -> Any:
    return build_plugin_manager(build_config(test_config(data, tmp_path)))


def _write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def test_builtins_are_registered_by_short_name(tmp_path: Path) -> None:
    pm = _pm(tmp_path, {})
    for name, _module in DEFAULT_PLUGINS:
        assert pm.has_plugin(name)
        assert pm.origins[name] == "built-in"


def test_a_disabled_builtin_is_not_registered(tmp_path: Path) -> None:
    pm = _pm(tmp_path, {"plugins": {"disable": ["model_rewrite"]}})
    assert pm.get_plugin("model_rewrite") is None
    assert pm.has_plugin("translate")


def test_a_disabled_plugin_file_is_never_imported(tmp_path: Path) -> None:
    boom = _write(tmp_path / "boom.py", "raise RuntimeError('imported although disabled')\n")
    pm = _pm(tmp_path, {"plugins": {"load": [str(boom)], "disable": ["boom"]}})
    assert pm.get_plugin("boom") is None


def test_a_disabled_plugin_module_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "boom_module.py", "raise RuntimeError('imported although disabled')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _pm(tmp_path, {"plugins": {"load": ["boom_module"], "disable": ["boom_module"]}})
    assert "boom_module" not in sys.modules


def test_a_plugin_that_fails_to_import_stops_the_start(tmp_path: Path) -> None:
    boom = _write(tmp_path / "boom.py", "raise RuntimeError('kaputt')\n")
    with pytest.raises(PluginError, match="kaputt"):
        _pm(tmp_path, {"plugins": {"load": [str(boom)]}})


def test_plugins_load_accepts_a_py_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "local_plugin.py", ECHO_CONFIG_PLUGIN.format(name="local_plugin"))
    pm = _pm(tmp_path, {"plugins": {"load": [str(path)]}})
    (row,) = [r for r in describe_plugins(pm) if r["name"] == "local_plugin"]
    assert row == {
        "name": "local_plugin",
        "origin": f"config ({path})",
        "hooks": ["ollamux_respond"],
    }


def test_plugins_load_accepts_a_module_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "acme"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _write(pkg / "audit.py", ECHO_CONFIG_PLUGIN.format(name="acme.audit"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme", raising=False)
    pm = _pm(tmp_path, {"plugins": {"load": ["acme.audit"]}})
    assert pm.has_plugin("acme.audit")
    assert pm.origins["acme.audit"] == "config (acme.audit)"


async def test_plugins_config_reaches_the_plugin(
    gateway_client: Any, tmp_path: Path, fake_ollama: Any
) -> None:
    path = _write(tmp_path / "echo.py", ECHO_CONFIG_PLUGIN.format(name="echo"))
    _fake, url = fake_ollama
    client = await gateway_client(
        {
            "backends": [{"url": url}],
            "plugins": {"load": [str(path)], "config": {"echo": {"sink": "/tmp/x", "level": 3}}},
        }
    )
    resp = await client.get("/api/plugin-config")
    assert resp.status == 200
    assert await resp.json() == {"sink": "/tmp/x", "level": 3}


def test_a_misspelled_hook_name_fails_at_start(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "typo.py",
        """
        from ollamux import hookimpl

        @hookimpl
        def ollamux_autenticate(exchange):
            return None
        """,
    )
    with pytest.raises(PluginError, match="ollamux_autenticate"):
        _pm(tmp_path, {"plugins": {"load": [str(path)]}})


def test_hook_wrappers_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "wrapper.py",
        """
        from ollamux import hookimpl

        @hookimpl(wrapper=True)
        def ollamux_select_backend(exchange):
            return (yield)
        """,
    )
    with pytest.raises(PluginError, match="wrappers are not supported"):
        _pm(tmp_path, {"plugins": {"load": [str(path)]}})


def test_disabling_the_balancer_without_a_replacement_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="ollamux_select_backend"):
        _pm(tmp_path, {"plugins": {"disable": ["balancer"]}})


def test_disabling_the_balancer_with_a_replacement_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path / "selector.py", SELECTOR_PLUGIN)
    pm = _pm(tmp_path, {"plugins": {"disable": ["balancer"], "load": [str(path)]}})
    assert pm.get_plugin("balancer") is None
    assert pm.has_plugin("selector")


def test_plugins_command_lists_name_origin_and_hooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "selector.py", SELECTOR_PLUGIN)
    config = tmp_path / "ollamux.yaml"
    config.write_text(f"plugins:\n  autoload: false\n  load: ['{path}']\n")
    monkeypatch.delenv("OLLAMUX_CONFIG", raising=False)
    assert main(["plugins", "--config", str(config), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["selector"] == {
        "name": "selector",
        "origin": f"config ({path})",
        "hooks": ["ollamux_select_backend"],
    }
    assert rows["balancer"]["origin"] == "built-in"
    assert "ollamux_select_backend" in rows["balancer"]["hooks"]


def test_plugins_command_prints_one_row_per_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ollamux.yaml"
    config.write_text("plugins: {autoload: false}\n")
    monkeypatch.delenv("OLLAMUX_CONFIG", raising=False)
    assert main(["plugins", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    balancer = next(line for line in lines if line.startswith("balancer "))
    assert "built-in" in balancer
    assert "ollamux_select_backend" in balancer
    assert len(lines) == len(DEFAULT_PLUGINS)


def test_plugins_command_exits_2_on_a_plugin_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ollamux.yaml"
    config.write_text("plugins: {autoload: false, disable: [balancer]}\n")
    monkeypatch.delenv("OLLAMUX_CONFIG", raising=False)
    assert main(["plugins", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "balancer" in err[0]


# -- the example third-party plugin, installed from plugins/ollamux-request-log ------------


def test_request_log_is_discovered_through_its_entry_point(tmp_path: Path) -> None:
    pm = _pm(tmp_path, {"plugins": {"autoload": True}})
    assert pm.has_plugin("request_log")
    assert pm.origins["request_log"] == f"entry point ({REQUEST_LOG_DIST})"


def test_request_log_is_not_loaded_without_autoload(tmp_path: Path) -> None:
    assert not _pm(tmp_path, {"plugins": {"autoload": False}}).has_plugin("request_log")


def test_request_log_can_be_disabled_by_name(tmp_path: Path) -> None:
    pm = _pm(tmp_path, {"plugins": {"autoload": True, "disable": ["request_log"]}})
    assert pm.get_plugin("request_log") is None


async def test_request_log_gets_its_config_and_logs_each_request(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    log_file = tmp_path / "logs" / "requests.jsonl"
    client = await gateway_client(
        {
            "backends": [{"name": "fake", "url": url}],
            "plugins": {
                "autoload": True,
                "config": {"request_log": {"path": str(log_file)}},
            },
        }
    )
    resp = await client.post(
        "/api/chat", json={"model": "llama3.2:latest", "messages": [], "stream": False}
    )
    assert resp.status == 200
    await resp.read()
    (line,) = log_file.read_text().splitlines()
    row = json.loads(line)
    assert row["task_id"] == resp.headers["X-Task-Id"]
    assert (row["path"], row["model"], row["backend"], row["status"], row["outcome"]) == (
        "/api/chat",
        "llama3.2:latest",
        "fake",
        200,
        "SUCCESS",
    )


def _install_entry_point(site: Path, name: str, module: str, source: str) -> None:
    """A minimal installed distribution on ``site`` exposing one ``ollamux`` entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ollamux]\n{name} = {module}\n")


def test_an_entry_point_that_takes_a_builtin_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install_entry_point(site, "auth", "fake_auth", SELECTOR_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=r"auth: entry point fake_auth .* built-in"):
        _pm(tmp_path, {"plugins": {"autoload": True}})


def test_a_disabled_entry_point_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install_entry_point(site, "broken_ep", "broken_ep", "raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match="broken_ep"):
        _pm(tmp_path, {"plugins": {"autoload": True}})
    pm = _pm(tmp_path, {"plugins": {"autoload": True, "disable": ["broken_ep"]}})
    assert pm.get_plugin("broken_ep") is None


async def test_gateway_client_refuses_a_test_plugin_with_a_misspelled_hook(
    gateway_client: Any, fake_ollama: Any
) -> None:
    class Typo:
        @hookimpl
        def ollamux_request_finshed(self, exchange: Any) -> None:
            pass

    _fake, url = fake_ollama
    # The same error as a misspelled hook in a loaded plugin gets at start.
    with pytest.raises(PluginError, match="ollamux_request_finshed"):
        await gateway_client({"backends": [{"url": url}]}, plugins=[("typo", Typo())])


# -- plugin-author papercuts -------------------------------------------------------------------


def test_the_same_module_through_its_entry_point_and_plugins_load_is_one_plugin(
    tmp_path: Path,
) -> None:
    pm = _pm(tmp_path, {"plugins": {"autoload": True, "load": ["ollamux_request_log"]}})
    names = [name for name, plugin in pm.list_name_plugin() if plugin is not None]
    assert names.count("request_log") == 1
    assert "ollamux_request_log" not in names


def test_a_plugins_name_does_not_depend_on_how_it_was_loaded(tmp_path: Path) -> None:
    pm = _pm(tmp_path, {"plugins": {"autoload": False, "load": ["ollamux_request_log"]}})
    assert pm.has_plugin("request_log")  # its entry point's name, not the module path


def test_one_module_loaded_twice_under_two_names_is_one_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "twice.py", SELECTOR_PLUGIN)
    with pytest.raises(PluginError) as caught:
        _pm(tmp_path, {"plugins": {"load": [str(path), str(path)]}})
    assert str(caught.value).count("\n") == 0
    assert "twice" in str(caught.value) and "load it once" in str(caught.value)


def test_disabling_an_unknown_plugin_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="no plugin named 'model_rewirte'"):
        _pm(tmp_path, {"plugins": {"disable": ["model_rewirte"]}})


def test_a_route_added_without_an_action_is_refused_at_start(tmp_path: Path) -> None:
    from aiohttp import web

    from ollamux.app import create_app

    class Sloppy:
        @hookimpl
        def ollamux_register_routes(self, app: web.Application) -> None:
            async def open_door(request: web.Request) -> web.Response:
                return web.Response(text="anyone")

            app.router.add_get("/open-door", open_door)

    config = build_config(test_config({}, tmp_path))
    pm = build_plugin_manager(config, extra=[("sloppy", Sloppy())])
    with pytest.raises(PluginError, match="/open-door was added without an action"):
        create_app(config, pm)


def test_a_yaml_error_keeps_its_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ollamux.yaml"
    config.write_text("server:\n  port: 1\n  host: [a\nbackends: []\n")
    monkeypatch.delenv("OLLAMUX_CONFIG", raising=False)
    assert main(["check", "--config", str(config)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "line 4, column 9" in line
