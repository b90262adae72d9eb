"""The ``ollamux`` command refuses what cannot work with one line and an exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ollamux import __version__
from ollamux.cli import main


def _ollamux(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMUX_")}
    return subprocess.run(
        [sys.executable, "-m", "ollamux", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ollamux {__version__}"


def test_serve_refuses_a_bad_config_with_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "ollamux.yaml").write_text("routing:\n  retrys: 3\n")
    result = _ollamux("serve", "--config", "ollamux.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["ollamux: config error: routing.retrys: unknown key"]


def test_serve_refuses_a_misspelled_hook_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(
        "from ollamux import hookimpl\n\n@hookimpl\ndef ollamux_autenticate(exchange):\n    pass\n"
    )
    (tmp_path / "ollamux.yaml").write_text("plugins: {load: [./typo.py]}\n")
    result = _ollamux("serve", "--config", "ollamux.yaml", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("ollamux: plugin error:")
    assert "ollamux_autenticate" in line


def test_serve_on_a_taken_port_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _ollamux("serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("ollamux:")]
    assert line.startswith(f"ollamux: cannot serve on 127.0.0.1:{port}:")
