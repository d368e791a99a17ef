"""The main job: run the Gemini example tuning DAG end to end against the local emulator.

Prepares a throw-away Airflow home in ``.demo/``, starts the emulator on a free loopback port,
runs ``airflow dags test example_gemini_tuning``, prints the tuning progress and the tuned model's
answers as they happen, and stops everything it started.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
DAG_ID = "example_gemini_tuning"
API_KEY = "demo-emulator-key"
# Lines of the DAG run worth showing: progress of the tuning wait, answers, task outcomes.
SHOW = re.compile(
    r"(\d+% step \d+/\d+|Answer|answer|Evaluation|Deferring|Resuming|Created tuned model|Reattach"
    r"|Marking task as|Deleted tuned model|ERROR|Traceback|Error:)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_emulator/state", timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    home = DEMO / "airflow-home"
    home.mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT=json.dumps(
            {"conn_type": "generative_language", "host": url, "password": API_KEY}
        ),
        PYTHONUNBUFFERED="1",
    )
    bin_dir = Path(sys.executable).parent
    print(f"[demo] Airflow home: {home}")
    print(f"[demo] starting the emulator on {url}")
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_tuning.emulator",
            "--port",
            str(port),
            "--step-seconds",
            "0.25",
            "--api-key",
            API_KEY,
        ],
        stdout=(DEMO / "emulator.log").open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_until_up(url, time.monotonic() + 30)
        print("[demo] migrating the Airflow metadata database (sqlite)")
        subprocess.run(
            [bin_dir / "airflow", "db", "migrate"],
            env=env,
            check=True,
            stdout=(DEMO / "db-migrate.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        print(f"[demo] airflow dags test {DAG_ID}  (full log: .demo/dags-test.log)")
        with (DEMO / "dags-test.log").open("w") as full_log:
            run = subprocess.Popen(
                [bin_dir / "airflow", "dags", "test", DAG_ID],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert run.stdout is not None
            for line in run.stdout:
                full_log.write(line)
                if SHOW.search(line):
                    print("   ", line.rstrip()[:220])
            rc = run.wait()
        print(f"[demo] dags test finished with exit code {rc}")
        return rc
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
        print("[demo] emulator stopped")


if __name__ == "__main__":
    sys.exit(main())
