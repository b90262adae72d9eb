"""Configuration: schema errors with their messages, interpolation, precedence, formats."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollamux.cli import main
from ollamux.config_loader import ConfigError, build_config, load_config

DATA = Path(__file__).parent / "data"


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        build_config(data)
    return str(info.value)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- defaults --------------------------------------------------------------------------------


def test_defaults_listen_on_11535_with_one_local_ollama_backend() -> None:
    config = build_config({})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 11535)
    (backend,) = config.backends
    assert (backend.url, backend.api, backend.name) == (
        "http://127.0.0.1:11434",
        "ollama",
        "127.0.0.1:11434",
    )


# -- each error names the key and the reason ---------------------------------------------------


def test_unknown_top_level_key_is_named() -> None:
    assert _error({"servr": {}}) == "servr: unknown key"


def test_unknown_nested_key_is_named_with_its_path() -> None:
    assert _error({"routing": {"retrys": 3}}) == "routing.retrys: unknown key"


def test_unknown_key_inside_a_list_item_is_named_with_its_index() -> None:
    assert (
        _error({"backends": [{"url": "http://a:1"}, {"url": "http://b:1", "apikey": "x"}]})
        == "backends[1].apikey: unknown key"
    )


def test_wrong_type_is_reported() -> None:
    assert _error({"server": {"port": "eleven"}}) == "server.port: must be an integer, got 'eleven'"


def test_a_section_that_is_not_a_mapping_is_reported() -> None:
    assert _error({"routing": [1, 2]}) == "routing: must be a mapping, got list"


def test_bad_literal_lists_the_choices() -> None:
    assert (
        _error({"backends": [{"url": "http://a:1", "api": "vllm"}]})
        == "backends[0].api: must be one of ollama, openai; got 'vllm'"
    )


def test_bad_url_is_reported() -> None:
    assert (
        _error({"backends": [{"url": "ftp://host/x"}]})
        == "backends[0].url: 'ftp://host/x' is not an http(s) URL"
    )


def test_duplicate_backend_names_are_refused() -> None:
    assert (
        _error(
            {"backends": [{"url": "http://a:1", "name": "x"}, {"url": "http://b:1", "name": "x"}]}
        )
        == "backends[1].name: duplicate backend name 'x'"
    )


def test_a_required_key_is_reported() -> None:
    assert _error({"backends": [{"name": "x"}]}) == "backends[0].url: is required"


def test_missing_environment_variable_is_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.yaml",
        "backends:\n  - url: http://a:1\n    api: openai\n    api_key: ${VLLM_KEY}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == "backends[0].api_key: environment variable VLLM_KEY is not set"


def test_a_file_that_is_not_yaml_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "server: [unclosed\n")
    with pytest.raises(ConfigError, match=r"cannot parse .*c\.yaml"):
        load_config(path, env={})


# -- interpolation -----------------------------------------------------------------------------


def test_env_references_are_replaced(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.yaml",
        "backends:\n  - url: http://${HOST}:${PORT}\n    api_key: ${KEY}\n",
    )
    config = load_config(path, env={"HOST": "10.0.0.9", "PORT": "8000", "KEY": "s3cret"})
    assert (config.backends[0].url, config.backends[0].api_key) == (
        "http://10.0.0.9:8000",
        "s3cret",
    )


def test_env_reference_default_applies_when_unset(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "server:\n  port: ${PORT:-12000}\n  host: ${HOST:-0.0.0.0}\n")
    config = load_config(path, env={"HOST": "::1"})
    assert (config.server.port, config.server.host) == (12000, "::1")


def test_env_reference_inside_a_flow_list_parses(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "auth:\n  admin_keys: [${ADMIN}, ${OTHER:-two}]\n")
    assert load_config(path, env={"ADMIN": "one"}).auth.admin_keys == ["one", "two"]


# -- precedence: flags > OLLAMUX_* environment > file > defaults ----------------------------


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "server:\n  host: 10.1.1.1\n  port: 1000\n  workers: 3\n")
    env = {"OLLAMUX_PORT": "2000", "OLLAMUX_HOST": "10.2.2.2"}
    config = load_config(path, env=env, overrides={"server": {"port": 3000}})
    assert config.server.port == 3000  # flag
    assert config.server.host == "10.2.2.2"  # environment
    assert config.server.workers == 3  # file
    assert config.server.max_body_mb == 64  # default


def test_any_key_can_be_set_from_the_environment() -> None:
    config = load_config(None, env={"OLLAMUX_ROUTING__RETRIES": "5"})
    assert config.routing.retries == 5


def test_a_misspelled_environment_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^routing\.retrys: unknown key$"):
        load_config(None, env={"OLLAMUX_ROUTING__RETRYS": "5"})


def test_ollamux_config_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "server: {port: 4321}\n")
    assert load_config(None, env={"OLLAMUX_CONFIG": str(path)}).server.port == 4321


def test_backends_from_environment_mark_openai_with_a_fragment() -> None:
    config = load_config(None, env={"OLLAMUX_BACKENDS": "http://a:11434,http://b:8000/#openai"})
    assert [(b.url, b.api) for b in config.backends] == [
        ("http://a:11434", "ollama"),
        ("http://b:8000", "openai"),
    ]


# -- formats -----------------------------------------------------------------------------------


def test_toml_is_accepted_with_the_same_schema(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.toml",
        """
[server]
port = 12345

[[backends]]
name = "gpu1"
url = "http://10.0.0.5:11434"
max_concurrency = 2

[[backends]]
name = "vllm"
url = "http://10.0.0.9:8000"
api = "openai"
api_key = "${VLLM_KEY}"

[models.aliases]
"gpt-4o" = "llama3.2:latest"
""",
    )
    config = load_config(path, env={"VLLM_KEY": "k"})
    assert config.server.port == 12345
    assert [(b.name, b.api, b.max_concurrency) for b in config.backends] == [
        ("gpu1", "ollama", 2),
        ("vllm", "openai", 16),
    ]
    assert config.backends[1].api_key == "k"
    assert config.models.aliases == {"gpt-4o": "llama3.2:latest"}


def test_toml_unknown_keys_are_errors_too(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.toml", "[routing]\nretrys = 3\n")
    with pytest.raises(ConfigError, match=r"^routing\.retrys: unknown key$"):
        load_config(path, env={})


def test_design_example_parses_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "my_company"  # the example loads a plugin of this name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "ollamux_audit.py").write_text("")
    (tmp_path / "local_plugin.py").write_text("")  # and a plugin file of this name
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    env = {"VLLM_KEY": "vllm-secret", "OLLAMUX_ADMIN_KEY": "admin-secret"}
    config = load_config(DATA / "design_example.yaml", env=env)
    assert [b.name for b in config.backends] == ["gpu1", "vllm"]
    assert config.backends[1].api_key == "vllm-secret"
    assert config.backends[1].models == ["qwen2.5-72b"]
    assert config.discovery is not None and config.discovery.ports == "24000-24100"
    assert config.routing.read_timeout_s == 600
    assert "models" not in config.sections  # model_rewrite is disabled: its section unread
    assert config.tasks.store == "sqlite"
    assert config.jobs.workers == 4
    (alice,) = config.auth.keys
    assert alice.key_sha256 == hashlib.sha256(b"password").hexdigest()
    assert alice.models == ["llama3.2:*"]
    assert config.auth.admin_keys == ["admin-secret"]
    assert config.cors.allow_origins == ["*"]
    assert config.plugins.disable == ["model_rewrite"]
    assert config.plugin_config("my_company.ollamux_audit") == {"sink": "/var/log/audit.jsonl"}


# -- ollamux check -----------------------------------------------------------------------------


def test_check_prints_the_effective_config_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(
        tmp_path,
        "c.yaml",
        """
backends:
  - url: http://10.0.0.9:8000
    api: openai
    api_key: ${VLLM_KEY}
    headers: {X-Secret: abc}
tasks:
  redis_url: redis://:hunter2@127.0.0.1:6379/0
auth:
  keys:
    - {name: alice, key: alice-key}
plugins:
  autoload: false
""",
    )
    monkeypatch.setenv("VLLM_KEY", "vllm-secret")
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    for secret in ("vllm-secret", "abc", "hunter2", "alice-key"):
        assert secret not in out
    effective = yaml.safe_load(out)
    assert effective["backends"][0]["api_key"] == "***"
    assert effective["backends"][0]["headers"] == {"X-Secret": "***"}
    assert effective["tasks"]["redis_url"] == "redis://:***@127.0.0.1:6379/0"
    assert effective["auth"]["keys"][0] == {**effective["auth"]["keys"][0], "key": "***"}
    assert effective["routing"]["retries"] == 2  # defaults are shown too


def test_check_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "c.yaml", "routing:\n  retrys: 3\n")
    assert main(["check", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert "routing.retrys" in line
    assert "unknown key" in line


def test_check_refuses_a_plugin_setup_that_cannot_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "c.yaml", "plugins: {autoload: false, disable: [balancer]}\n")
    assert main(["check", "--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "balancer" in line
