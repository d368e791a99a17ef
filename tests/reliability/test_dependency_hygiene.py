"""Dependency and code hygiene: bandit stays clean, its exclusions hide nothing new, and
``make audit`` never passes without having audited.

``[tool.bandit]`` in pyproject.toml skips B105 and B311 everywhere and B101 in the emulator (its own
distribution, tuning-api-emulator). So that these skips cannot hide a new finding, bandit also runs
here without any configuration and every finding must be one of those justified in
docs/security.md (same test, file and source line).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGE = "airflow_provider_tuning"
EMULATOR = "tuning-api-emulator/tuning_api_emulator"
SECURITY_DOC = ROOT / "docs" / "security.md"

#: Findings of a configuration-free bandit run that docs/security.md justifies, by
#: (test id, file, stripped source line). B101 is justified for every assert of the emulator.
JUSTIFIED = {
    ("B105", f"{PACKAGE}/get_provider_info.py", '"relabeling": {"host": "Base URL", "password": "API key"},'),
    (
        "B105",
        f"{PACKAGE}/get_provider_info.py",
        '"password": "API key (leave empty for OAuth, service account or ADC)",',
    ),
    (
        "B105",
        f"{PACKAGE}/hooks/connection.py",
        'GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret',
    ),
    ("B311", f"{EMULATOR}/faults.py", "self._rng = random.Random(seed)"),
    ("B311", f"{EMULATOR}/service.py", "self.rng = random.Random(seed)"),
}
B101_JUSTIFIED_UNDER = f"{EMULATOR}/"


def _bandit(
    *targets: str, args: tuple[str, ...] = (), cwd: Path = ROOT
) -> tuple[int, list[dict[str, object]]]:
    proc = subprocess.run(
        [str(BIN / "bandit"), *args, "-r", *targets, "-f", "json", "-q"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)["results"]


def _key(finding: dict[str, object], cwd: Path = ROOT) -> tuple[str, str, str]:
    path = str(finding["filename"])
    line = (cwd / path).read_text().splitlines()[int(str(finding["line_number"])) - 1].strip()
    return str(finding["test_id"]), path, line


def _unjustified(findings: list[dict[str, object]], cwd: Path = ROOT) -> list[tuple[str, str, str]]:
    keys = [_key(finding, cwd) for finding in findings]
    return [
        key
        for key in keys
        if key not in JUSTIFIED and not (key[0] == "B101" and key[1].startswith(B101_JUSTIFIED_UNDER))
    ]


def test_bandit_with_the_project_configuration_reports_nothing():
    code, findings = _bandit(PACKAGE, EMULATOR, args=("-c", "pyproject.toml"))
    assert (code, findings) == (0, [])


def test_every_unconfigured_bandit_finding_is_justified_in_the_security_doc():
    _, findings = _bandit(PACKAGE, EMULATOR)
    assert findings, "bandit without configuration should report the justified findings"
    assert _unjustified(findings) == []
    doc = SECURITY_DOC.read_text()
    for test_id, path, line in {_key(finding) for finding in findings}:
        assert f"{test_id} " in doc, f"{test_id} is not justified in {SECURITY_DOC}"
        assert path in doc, f"{test_id} in {path} is not justified in {SECURITY_DOC}"
        if test_id != "B101":
            assert line.split("#")[0].strip() in doc, f"{line!r} is not quoted in {SECURITY_DOC}"


def test_the_guard_and_the_configuration_catch_new_findings(tmp_path):
    """Control: planted findings outside the justified ones are reported."""
    package = tmp_path / PACKAGE
    shutil.copytree(ROOT / PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (package / "hooks" / "planted.py").write_text(
        'import random\n\npassword = "hunter2-not-a-real-one"\njitter = random.random()\nassert jitter >= 0\n'
    )
    _, findings = _bandit(PACKAGE, cwd=tmp_path)
    assert {key[0] for key in _unjustified(findings, tmp_path)} == {"B101", "B105", "B311"}
    code, configured = _bandit(PACKAGE, args=("-c", "pyproject.toml"), cwd=tmp_path)
    assert code == 1
    assert [(f["test_id"], f["filename"]) for f in configured] == [("B101", f"{PACKAGE}/hooks/planted.py")]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_make_audit_fails_with_a_clear_message_when_the_vulnerability_api_is_unreachable():
    """All HTTPS goes to a closed loopback proxy, so PyPI is unreachable: the target must fail, say
    why, and never reach pip-audit (which without --strict would skip every package and pass)."""
    dead_proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "https_proxy", "http_proxy")}
    env.update(HTTPS_PROXY=dead_proxy, https_proxy=dead_proxy)
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "audit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "make audit: FAILED - the dependency audit did not run" in proc.stderr
    assert "'no answer' instead of 200" in proc.stderr
    assert "pip-audit --strict" not in proc.stdout
