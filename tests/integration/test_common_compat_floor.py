"""The oldest ``apache-airflow-providers-common-compat`` that setup.cfg allows has every name we import.

The test reads the floor from setup.cfg, downloads exactly that version from the package index
(``pip download --no-deps``), and checks statically, by reading its source with ``ast`` (nothing of it
is imported), that every ``airflow.providers.common.compat...`` import in the package names a module
that exists there and a name that module defines at run time: a top-level definition or import (not
one under ``if TYPE_CHECKING:``), or a key of its lazy-import table (the ``__getattr__`` of
``compat.sdk`` resolves names from module-level dicts such as ``_IMPORT_MAP``).
"""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_provider_tuning"
DIST = "apache-airflow-providers-common-compat"
COMPAT = "airflow.providers.common.compat"


def required_floor() -> str:
    """The ``>=`` version setup.cfg requires of the compat provider."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    for line in config["options"]["install_requires"].splitlines():
        found = re.fullmatch(rf"{DIST}\s*>=\s*([0-9][0-9.]*)", line.strip())
        if found:
            return found.group(1)
    raise AssertionError(f"setup.cfg does not require {DIST}>=...")


def compat_imports() -> dict[tuple[str, str | None], list[str]]:
    """``(module, name)`` pairs the package imports from the compat provider, with where they are.

    ``name`` is ``None`` for a module imported by its dotted path (``importlib.import_module`` or a
    string in a list of modules to import).
    """
    found: dict[tuple[str, str | None], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(COMPAT):
                for alias in node.names:
                    found.setdefault((str(node.module), alias.name), []).append(where)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(COMPAT):
                        found.setdefault((alias.name, None), []).append(where)
            elif isinstance(node, ast.Constant) and _is_compat_module_name(node.value):
                found.setdefault((str(node.value), None), []).append(where)
    return found


def _is_compat_module_name(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(rf"{re.escape(COMPAT)}(\.\w+)+", value) is not None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Module-level statements that run at import: ``if``/``try`` bodies included, except
    ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                out.extend(_runtime_statements(node.body))
            out.extend(_runtime_statements(node.orelse))
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                out.extend(_runtime_statements(block))
    return out


def defined_names(source: str) -> set[str]:
    """Names a module defines at run time: definitions, imports and assignments at module level,
    and the string keys of its module-level dicts (the lazy-import tables its ``__getattr__`` reads)."""
    names: set[str] = set()
    for node in _runtime_statements(ast.parse(source).body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    names.add(str(target.slice.value))  # _IMPORT_MAP["Name"] = ...
            if isinstance(node.value, ast.Dict):
                names.update(str(k.value) for k in node.value.keys if isinstance(k, ast.Constant))
    return names


def module_source(wheel: zipfile.ZipFile, module: str) -> str | None:
    """The source of ``module`` in the wheel (a ``.py`` file or a package's ``__init__.py``)."""
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if candidate in wheel.namelist():
            return wheel.read(candidate).decode("utf-8")
    return None


def missing_in(wheel_path: Path, imports: dict[tuple[str, str | None], list[str]]) -> list[str]:
    """What the package imports that the wheel does not provide, one line per problem."""
    problems = []
    with zipfile.ZipFile(wheel_path) as wheel:
        for (module, name), where in sorted(imports.items(), key=lambda item: (item[0][0], item[0][1] or "")):
            source = module_source(wheel, module)
            if source is None:
                problems.append(f"module {module} does not exist (imported by {', '.join(where)})")
            elif name is not None and name not in defined_names(source):
                problems.append(f"{module} defines no {name} (imported by {', '.join(where)})")
    return problems


def download(version: str, folder: Path) -> Path:
    """Download exactly ``DIST==version`` (its wheel, no dependencies) into ``folder``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            f"{DIST}=={version}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = folder.glob("*.whl")
    return wheel


def test_the_package_imports_from_the_compat_provider() -> None:
    imports = compat_imports()
    assert (f"{COMPAT}.sdk", "BaseOperator") in imports
    assert (f"{COMPAT}.connection", "get_async_connection") in imports


def test_the_checker_sees_what_an_old_version_lacks(tmp_path: Path) -> None:
    """Control: 1.7.0 has no ``compat.sdk``, so the check must report it."""
    problems = missing_in(download("1.7.0", tmp_path), compat_imports())
    assert any(p.startswith(f"module {COMPAT}.sdk does not exist") for p in problems), problems


def test_the_required_floor_has_every_imported_name(tmp_path: Path) -> None:
    floor = required_floor()
    problems = missing_in(download(floor, tmp_path), compat_imports())
    assert problems == [], f"{DIST}=={floor} (the floor in setup.cfg) lacks: {problems}"


@pytest.mark.parametrize("name", ["Asset", "get_async_connection"])
def test_defined_names_reads_definitions_and_lazy_tables(name: str) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from x import Hidden\n"
        "_IMPORT_MAP = {'Asset': ('airflow.sdk',)}\n"
        "async def get_async_connection(conn_id): ...\n"
    )
    assert name in defined_names(source)
    assert "Hidden" not in defined_names(source)
