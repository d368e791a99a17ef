"""The main job: run the Gemini example tuning DAG end to end against the local emulator.

``make demo`` runs this script (``make demo DAG=example_vertex_tuning`` runs the Vertex AI example:
its tuning job, Cloud Storage upload and OAuth token refresh all go to the emulator too). It

1. prepares a throw-away Airflow home in ``.demo/airflow-home`` (sqlite, DAGs from ``dags/``);
2. starts the emulator (``python -m tuning_api_emulator --port 0``) as a subprocess on a
   free loopback port, with 0.25 s per tuning step so the seed's 38-step job takes about 10 s;
3. runs ``airflow db migrate`` and ``airflow dags test example_gemini_tuning``;
4. prints, as they happen, the lines of that run worth reading: the tuning progress (logged by the
   ``TuningOperationTrigger`` on every poll that sees a change), the tuned model's answers and the
   clean-up; the full output goes to ``.demo/dags-test.log``;
5. stops the emulator by its PID and exits with the run's exit code (non-zero on failure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
DAG_ID = "example_gemini_tuning"
DAGS = ("example_gemini_tuning", "example_palm_tuning", "example_vertex_tuning")
#: The emulator's only accepted key: a local stand-in, not a credential of any service.
EMULATOR_KEY = "demo-emulator-key"
#: The emulator's only accepted refresh token (the Vertex AI example's OAuth credentials): a stand-in.
EMULATOR_REFRESH_TOKEN = "demo-emulator-refresh-token"  # noqa: S105 - a stand-in
VERTEX_PROJECT = "demo-project"
VERTEX_BUCKET = "demo-tuning-staging"
#: A structlog console line: ``<time> [<level>] <message> [<logger>] key=value ...``.
LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<message>.*?)\s+\[(?P<logger>[\w.]+)\](?: |$)")
SERVING = re.compile(r"serving on (?P<url>http://\S+)")


@dataclass
class Shown:
    """What the demo prints of one log line: the column (task or component) and the text."""

    where: str
    text: str


class RunFilter:
    """Pick the lines of ``airflow dags test`` worth showing, and remember the outcome."""

    def __init__(self) -> None:
        self.task = "-"
        self.answers: list[str] = []
        self.state: str | None = None

    def __call__(self, raw: str) -> Shown | None:
        match = LINE.match(raw)
        if match is None:
            return None
        level, message, logger = match["level"], match["message"], match["logger"]
        started = re.match(r"\[DAG TEST\] starting task_id=(\S+)", message)
        if started:
            self.task = started[1]
            return None
        if message.startswith("[DAG TEST] running trigger in line"):
            return Shown(self.task, "deferred: the trigger polls the tuning operation (no worker slot held)")
        if logger.endswith("TuningOperationTrigger"):
            return Shown("trigger", message.split(": ", 1)[-1])
        operators = (
            "CreateTunedModelOperator",
            "DeleteTunedModelOperator",
            "CreateVertexTuningJobOperator",
            "DeleteVertexTunedModelOperator",
        )
        if logger.endswith(operators) and message.startswith(
            (
                "Validated",
                "Created",
                "Reattach",
                "Tuned model",
                "Deleted",
                "Could not",
                "Uploaded",
                "Tuning job",
            )
        ):
            return Shown(self.task, message)
        if message.startswith(("Holdout score", "Promoted")):
            self.answers.append(message)
            return Shown(self.task, message)
        if logger.endswith(("GenerateContentOperator", "GenerateTextOperator")) and " done: " in message:
            return Shown(self.task, message)
        if message.startswith("Answer: "):
            self.answers.append(message)
            return Shown(self.task, message)
        finished = re.match(r"DagRun Finished: .*?\bstate=(\w+)", message)
        if finished:
            self.state = finished[1]
            return None
        if level in ("error", "critical"):
            return Shown(self.task, f"{level.upper()}: {message}")
        return None


def _start_emulator(env: dict[str, str], step_seconds: float) -> tuple[subprocess.Popen[str], str]:
    """Start the emulator on a free port; return the process and its URL (read from its first line)."""
    log = (DEMO / "emulator.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuning_api_emulator",
            "--port",
            "0",
            "--step-seconds",
            str(step_seconds),
            "--api-key",
            EMULATOR_KEY,
            "--refresh-token",
            EMULATOR_REFRESH_TOKEN,
            "--verbose",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url: str | None = None
    for line in proc.stdout:
        log.write(line)
        found = SERVING.search(line)
        if found:
            url = found["url"]
            break
    if url is None:
        log.close()
        raise RuntimeError(f"the emulator did not start (exit code {proc.wait()}); see .demo/emulator.log")
    threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
    return proc, url


def _drain(stream: IO[str], sink: IO[str]) -> None:
    with sink:
        for line in stream:
            sink.write(line)
            sink.flush()


def _stop(proc: subprocess.Popen[str], what: str) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    print(f"[demo] {what} stopped (pid {proc.pid})")


def _environment(url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    home = DEMO / "airflow-home"
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        # Poll the tuning job every second (the provider's default is 30 s, for real jobs).
        AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL="1",
        PYTHONUNBUFFERED="1",
    )
    if url is not None:
        env["AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT"] = json.dumps(
            {"conn_type": "generativelanguage", "host": url, "password": EMULATOR_KEY}
        )
        env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = json.dumps(
            {
                "conn_type": "google_cloud_platform",
                "host": url,
                "extra": {"project": VERTEX_PROJECT, "keyfile_dict": _user_credentials(url)},
            }
        )
    return env


def _user_credentials(url: str) -> dict[str, str]:
    """An ``authorized_user`` JSON that refreshes at the emulator's ``/token`` (no real credential)."""
    return {
        "type": "authorized_user",
        "client_id": "demo.apps.googleusercontent.com",
        "client_secret": "demo-emulator-client-secret",
        "refresh_token": EMULATOR_REFRESH_TOKEN,
        "token_uri": f"{url}/token",
    }


def _create_bucket(url: str) -> None:
    """Create the Vertex AI example's staging bucket in the emulator's Cloud Storage."""
    import requests

    grant = requests.post(
        f"{url}/token", data={"grant_type": "refresh_token", **_user_credentials(url)}, timeout=30
    )
    grant.raise_for_status()
    token = grant.json()["access_token"]
    created = requests.post(
        f"{url}/storage/v1/b",
        params={"project": VERTEX_PROJECT},
        json={"name": VERTEX_BUCKET},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    created.raise_for_status()


def _run_dag(env: dict[str, str], started: float, dag_id: str) -> tuple[int, RunFilter]:
    """``airflow dags test``: stream its output to the full log and the chosen lines to the screen."""
    pick = RunFilter()
    airflow = str(Path(sys.executable).parent / "airflow")
    command = [airflow, "dags", "test", dag_id]
    if dag_id == "example_vertex_tuning":
        command += ["--conf", json.dumps({"staging_uri": f"gs://{VERTEX_BUCKET}/example_vertex_tuning"})]
    with (DEMO / "dags-test.log").open("w") as full_log:
        run = subprocess.Popen(
            command,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert run.stdout is not None
        try:
            for line in run.stdout:
                full_log.write(line)
                shown = pick(line.rstrip("\n"))
                if shown is not None:
                    elapsed = time.monotonic() - started
                    print(f"    {elapsed:6.1f}s  {shown.where:<13} {shown.text[:160]}", flush=True)
            return run.wait(), pick
        finally:
            if run.poll() is None:  # interrupted: stop the run we started
                _stop(run, "airflow dags test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--step-seconds", type=float, default=0.25, help="emulated seconds per tuning step (default 0.25)"
    )
    parser.add_argument("--dag", choices=DAGS, default=DAG_ID, help=f"the example to run (default {DAG_ID})")
    args = parser.parse_args(argv)

    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "airflow-home").mkdir(parents=True)
    started = time.monotonic()
    print(f"[demo] Airflow home: {DEMO.relative_to(ROOT)}/airflow-home (sqlite); DAGs from dags/")
    emulator, url = _start_emulator(_environment(), args.step_seconds)
    print(f"[demo] emulator serving on {url} (pid {emulator.pid}), {args.step_seconds:g} s per tuning step")
    try:
        env = _environment(url)
        print("[demo] airflow db migrate  (log: .demo/db-migrate.log)")
        with (DEMO / "db-migrate.log").open("w") as out:
            migrated = subprocess.run(
                [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if migrated.returncode != 0:
            print(f"[demo] airflow db migrate failed (exit {migrated.returncode}); see .demo/db-migrate.log")
            return migrated.returncode
        if args.dag == "example_vertex_tuning":
            _create_bucket(url)
            print(f"[demo] created the staging bucket gs://{VERTEX_BUCKET} in the emulator's Cloud Storage")
        print(f"[demo] airflow dags test {args.dag}  (full log: .demo/dags-test.log)")
        rc, pick = _run_dag(env, started, args.dag)
    finally:
        _stop(emulator, "emulator")

    state = pick.state or "unknown"
    print(f"[demo] run {state}, exit code {rc}, {time.monotonic() - started:.0f} s in all")
    if rc != 0 or state != "success":
        tail = (DEMO / "dags-test.log").read_text(errors="replace").splitlines()[-15:]
        print("[demo] the end of .demo/dags-test.log:")
        for line in tail:
            print(f"    {line[:200]}")
    if pick.answers:
        print("[demo] the tuned model's answers (the emulator answers with the output of the most")
        print("       similar training example):")
        for answer in pick.answers:
            print(f"         {answer}")
    if rc == 0 and state != "success":
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
