"""Builds of this checkout's distributions for the packaging tests, from copies of the sources in
temporary folders (no build output lands in the repository)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What the provider's sdist and wheel are built from.
PROVIDER_SOURCES = (
    "setup.py",
    "setup.cfg",
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "airflow_provider_tuning",
    "dags",
)
_IGNORE = shutil.ignore_patterns("*.egg-info", "__pycache__", "build")


def copy_provider_sources(dest: Path) -> Path:
    """Copy the provider's build sources into ``dest`` and return it.

    :param dest: an empty folder.
    """
    for name in PROVIDER_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=_IGNORE)
        else:
            shutil.copy2(source, dest / name)
    return dest


def copy_emulator_sources(dest: Path) -> Path:
    """Copy ``tuning-api-emulator/`` to ``dest`` (which must not exist) and return it.

    :param dest: the folder to create.
    """
    shutil.copytree(ROOT / "tuning-api-emulator", dest, ignore=_IGNORE)
    return dest


def pip_wheel(source: Path, out: Path, pattern: str) -> Path:
    """Build a wheel with ``pip wheel --no-deps`` and return the one file matching ``pattern``.

    :param source: a source folder or an sdist.
    :param out: the folder the wheel goes to.
    :param pattern: the glob of the wheel's file name.
    """
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob(pattern)
    return built
