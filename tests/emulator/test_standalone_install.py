"""tuning-api-emulator is its own distribution: it installs (with its one dependency, aiohttp) into
a fresh virtualenv that has no Airflow, and its console command serves the API from there."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import venv

import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tuning-api-emulator"


def _clean_env() -> dict[str, str]:
    """The environment without anything that would let the new venv see this repository's packages."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_installs_and_serves_in_a_venv_without_airflow(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "src"  # a copy: building must leave no build/ or egg-info in the repository
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert install.returncode == 0, install.stdout + install.stderr
    airflow = subprocess.run(
        [str(python), "-c", "import airflow"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert airflow.returncode != 0
    assert "ModuleNotFoundError: No module named 'airflow'" in airflow.stderr
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze"], capture_output=True, text=True, timeout=60, env=_clean_env()
    )
    assert re.search(r"(?mi)^aiohttp==", freeze.stdout), freeze.stdout
    assert re.search(r"(?mi)^tuning-api-emulator(==| @ )", freeze.stdout), freeze.stdout

    process = subprocess.Popen(
        [str(env_dir / "bin" / "tuning-api-emulator"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=_clean_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, line
        reply = requests.get(f"{found.group(0)}/v1beta/models", headers={"x-goog-api-key": "k"}, timeout=10)
        assert reply.status_code == 200
        assert any(m["name"] == "models/gemini-1.0-pro-001" for m in reply.json()["models"])
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0, out
    assert sys.prefix != str(env_dir)  # the check ran in the new venv, not in this one
