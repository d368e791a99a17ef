"""The README's path after the demo, step by step: build the sdist and from it the wheel, install it
into a fresh virtualenv, copy the example DAGs into a DAGs folder with the shipped command, and have
Airflow parse them with no import error.

The emulator's wheel is installed too, and its command answers the provider's connection test.

The fresh virtualenv gets Airflow from the test environment through a ``.pth`` line (installing
Airflow from the package index takes minutes; see the README), so what is tested is the provider's
own distribution: its wheel, its package data and its console script. The test environment's own
``.pth`` files (the editable install of this checkout) are not processed through such a line, and the
test checks that the provider and the DAGs come from the wheel.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from airflow_provider_tuning.examples import TARGET_NAME
from tests.build_dists import ROOT, copy_emulator_sources, copy_provider_sources, pip_wheel

API_KEY = "newcomer-install-key"
CONNECTION_TEST = """
import json
from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook
import airflow_provider_tuning
ok, message = GenerativeLanguageHook().test_connection()
print(json.dumps([ok, message, airflow_provider_tuning.__file__]))
"""
EXAMPLE_DAG_IDS = {
    "example_gemini_tuning",
    "example_palm_tuning",
    "example_tuning_form",
    "example_vertex_tuning",
    "example_weekly_tuning_pipeline",
}

PARSE = """
import json, sys
import airflow_provider_tuning
from importlib.metadata import distribution
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
dist = distribution("airflow-provider-tuning")
print(json.dumps({
    "dags": {dag_id: dag.fileloc for dag_id, dag in bag.dags.items()},
    "import_errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()},
    "provider_file": airflow_provider_tuning.__file__,
    "dist_path": str(dist.locate_file("")),
}))
"""


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built from a copy of the sources (no build output lands in the checkout)."""
    src = copy_provider_sources(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("sdist")
    build = f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", build], cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("airflow[-_]provider[-_]tuning-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def wheel(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from the sdist, as ``pip install <sdist>`` does."""
    return pip_wheel(sdist, tmp_path_factory.mktemp("wheel"), "airflow_provider_tuning-*.whl")


@pytest.fixture(scope="module")
def emulator_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emulator's wheel, built from a copy of ``tuning-api-emulator/``."""
    src = copy_emulator_sources(tmp_path_factory.mktemp("emulator-src") / "tuning-api-emulator")
    return pip_wheel(src, tmp_path_factory.mktemp("emulator-wheel"), "tuning_api_emulator-*.whl")


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, emulator_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with both wheels installed, Airflow visible through a ``.pth`` line."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"),
            *(str(wheel), str(emulator_wheel)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def test_the_wheel_ships_every_example_dag_and_its_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("airflow_provider_tuning/example_dags/")}
    expected = {
        f"airflow_provider_tuning/example_dags/{path.relative_to(ROOT / 'dags')}"
        for path in (ROOT / "dags").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == expected


def test_examples_copied_by_the_command_parse_in_airflow(fresh_venv: Path, tmp_path: Path) -> None:
    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    command = fresh_venv / "bin" / "airflow-tuning-examples"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
    }
    done = subprocess.run(
        [str(command), "copy", str(dags_folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    target = dags_folder / TARGET_NAME
    assert f"Copied {len(list(target.rglob('*.*')))} files into {target}" in done.stdout
    assert (target / "data" / "number_generator.jsonl").read_bytes() == (
        ROOT / "dags" / "data" / "number_generator.jsonl"
    ).read_bytes()

    parsed = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c", PARSE, str(dags_folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the checkout: its folder on sys.path would shadow the wheel
        timeout=300,
    )
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    result = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert result["import_errors"] == {}
    assert set(result["dags"]) == EXAMPLE_DAG_IDS
    assert all(Path(path).parent == target for path in result["dags"].values())
    # The provider and its metadata are the wheel's, not this checkout's editable install.
    assert result["provider_file"].startswith(str(fresh_venv))
    assert result["dist_path"].startswith(str(fresh_venv))


def test_the_command_keeps_a_changed_example_unless_forced(
    fresh_venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = [str(fresh_venv / "bin" / "python"), "-m", "airflow_provider_tuning.examples", "copy"]
    monkeypatch.chdir(tmp_path)  # not the checkout, whose folder on sys.path would shadow the wheel
    assert subprocess.run([*command, str(tmp_path)], capture_output=True, timeout=120).returncode == 0
    edited = tmp_path / TARGET_NAME / "example_tuning_form.py"
    edited.write_text("# my changes\n")

    refused = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert f"{edited} already exist(s) with other content; use --force" in refused.stderr
    assert edited.read_text() == "# my changes\n"

    forced = subprocess.run([*command, str(tmp_path), "--force"], capture_output=True, timeout=120)
    assert forced.returncode == 0
    assert edited.read_bytes() == (ROOT / "dags" / "example_tuning_form.py").read_bytes()

    missing = subprocess.run([*command, str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert "is not a directory" in missing.stderr


def test_the_installed_emulator_answers_the_connection_test(fresh_venv: Path, tmp_path: Path) -> None:
    """Steps 2 and 3: the emulator's command from its wheel, a connection with host and port, and the
    provider's connection test against it (one real ``models.list`` call)."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    emulator = subprocess.Popen(
        [str(fresh_venv / "bin" / "tuning-api-emulator"), "--port", "0", "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        assert emulator.stdout is not None
        ready, _, _ = select.select([emulator.stdout], [], [], 60)
        assert ready, "the emulator printed nothing within 60 s"
        line = emulator.stdout.readline()
        assert line.startswith("Tuning API emulator serving on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        results = {}
        for key in (API_KEY, "not-the-key"):
            conn = {
                "conn_type": "generativelanguage",
                "host": "http://127.0.0.1",
                "port": port,
                "password": key,
            }
            env["AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT"] = json.dumps(conn)
            done = subprocess.run(
                [str(fresh_venv / "bin" / "python"), "-c", CONNECTION_TEST],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            results[key] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(emulator.pid, signal.SIGTERM)
        emulator.wait(timeout=20)

    ok, message, provider_file = results[API_KEY]
    assert ok is True, message
    assert message.startswith(f"Connection to http://127.0.0.1:{port} (v1beta, api_key) works")
    assert provider_file.startswith(str(fresh_venv))
    ok, message, _ = results["not-the-key"]
    assert ok is False
    assert "API key not valid" in message
    assert "not-the-key" not in message
