"""A CeleryExecutor Airflow cluster on loopback: PostgreSQL, Redis, the emulator and Airflow.

``python scripts/cluster.py up`` (``make cluster``) starts, on free loopback ports: a throw-away
PostgreSQL cluster (``initdb``) with an ``airflow`` database, Redis, the tuning API emulator, an
api-server, a scheduler, a dag-processor, two Celery workers (``worker-1``, ``worker-2``, each with
its own Celery hostname and task-instance hostname) and two triggerers. Every process runs in its
own process group with its log in ``<dir>/logs/`` (Airflow's task logs in ``<dir>/logs/airflow/``);
``<dir>/cluster.json`` records ports and PIDs for ``status`` and ``down`` (``make cluster-down``).

What is missing is installed first: Debian's PostgreSQL and Redis through
``scripts/install_system_deps.sh``, the Celery and PostgreSQL providers through the ``cluster``
extra. PostgreSQL refuses to run as root: as root, it runs as ``nobody``.

The tests (``tests/cluster/``) start the same cluster in-process with :func:`up` and stop it with
:meth:`Cluster.down`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.airflow_stack import BIN, AirflowStack, free_port  # noqa: E402

#: The environment variable :func:`process_hostname` reads (one value per worker and triggerer).
HOSTNAME_ENV = "AIRFLOW_CLUSTER_HOSTNAME"
WORKERS = ("worker-1", "worker-2")
TRIGGERERS = ("triggerer-1", "triggerer-2")
#: Start order; ``down`` stops in the reverse order (clients before the servers they use).
AIRFLOW_PROCESSES = ("api-server", "scheduler", "dag-processor", *WORKERS, *TRIGGERERS)
PROCESSES = ("postgres", "redis", "emulator", *AIRFLOW_PROCESSES)
STATE_FILE = "cluster.json"
DEFAULT_DIR = ROOT / ".cluster"
#: The API key the emulator accepts and the cluster's connection sends (a local, throw-away one).
EMULATOR_API_KEY = "cluster-local-key"


def process_hostname() -> str:
    """``[core] hostname_callable`` of the cluster: the process's own name (``worker-1`` ...), so a
    task instance's ``hostname`` says which Celery worker ran it; the FQDN elsewhere."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


# --- processes ---------------------------------------------------------------------------------


def live_members(pgid: int) -> list[int]:
    """PIDs of the process group ``pgid`` that are alive (zombies do not count).

    :param pgid: a process group id (the PID of its leader).
    """
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(stat.parent.name))
    return alive


def stop_group(pgid: int, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
    """Send ``sig`` to a process group, wait for it to be gone, SIGKILL it after ``timeout``.

    :param pgid: the process group.
    :param sig: the first signal.
    :param timeout: seconds to wait before SIGKILL.
    :return: whether the group exited before SIGKILL was needed.
    """
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not live_members(pgid):
            return True
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    while live_members(pgid) and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    return False


def _wait(predicate: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"cluster: timed out after {timeout:g}s waiting for {what}\n{tail}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise RuntimeError(f"cluster: PostgreSQL's {name} not found (apt-get install postgresql)")


# --- installation ------------------------------------------------------------------------------


def ensure_installed() -> None:
    """Install PostgreSQL and Redis (Debian) and the Celery/PostgreSQL providers when missing."""
    have_pg = bool(list(Path("/usr/lib/postgresql").glob("*/bin/postgres")))
    if not have_pg or shutil.which("redis-server") is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "install_system_deps.sh")], check=True)
    missing = [
        module
        for module in ("airflow.providers.celery", "airflow.providers.postgres", "psycopg2", "redis")
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        print(f"cluster: installing the cluster extra (missing: {', '.join(missing)})", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[cluster]"], check=True)


# --- the cluster -------------------------------------------------------------------------------


@dataclass
class Cluster:
    """One cluster: its folder, ports, environment and processes.

    :param base: the cluster's folder (PostgreSQL data, Airflow home, logs, state file).
    :param dags_folder: the DAGs folder the dag-processor parses.
    :param step_seconds: seconds per emulated tuning step.
    :param worker_concurrency: task slots of each Celery worker.
    :param extra_env: more Airflow environment (overrides the defaults).
    :param airflow_processes: the Airflow processes to start (default: all of them; a benchmark
        starts the triggerers only).
    """

    base: Path
    dags_folder: Path = ROOT / "dags"
    step_seconds: float = 0.5
    worker_concurrency: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    airflow_processes: tuple[str, ...] = AIRFLOW_PROCESSES
    ports: dict[str, int] = field(default_factory=dict)
    fernet_key: str = ""
    stack: AirflowStack | None = None

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def state_file(self) -> Path:
        return self.base / STATE_FILE

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL of the Airflow database."""
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.ports['postgres']}/airflow"

    @property
    def dsn(self) -> str:
        """The libpq URL of the Airflow database (for psycopg2)."""
        return f"postgresql://airflow@127.0.0.1:{self.ports['postgres']}/airflow"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['emulator']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    # --- start ---------------------------------------------------------------------------------

    def _airflow_env(self) -> dict[str, str]:
        redis = f"redis://127.0.0.1:{self.ports['redis']}/0"
        conn = {"conn_type": "generativelanguage", "host": self.emulator_url, "password": EMULATOR_API_KEY}
        return {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "64",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.cluster.process_hostname",
            "AIRFLOW__CELERY__BROKER_URL": redis,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.db_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            # Sending to Redis within the default 1 s fails on a loaded host, and the executor's
            # resend then queues the same task twice (two workers racing for one try).
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": "15",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "airflow"),
            "AIRFLOW__API__WORKERS": "1",
            # The api-server answers its first Execution API call only after seconds of warm-up CPU
            # (longer on a loaded host); a worker that gave up and retried would find its own try
            # already running and fail it.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "90",
            # A SIGKILLed triggerer's triggers go to the other one once its heartbeat is this old.
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            # A task whose worker died is failed (and retried) once its heartbeat is this old.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT": json.dumps(conn),
            "AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL": "1",
            **self.extra_env,
        }

    def _spawn(
        self, name: str, args: Sequence[str], env: dict[str, str] | None = None, user: str | None = None
    ) -> subprocess.Popen[bytes]:
        assert self.stack is not None
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            list(args),
            env=env if env is not None else self.stack.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
            user=user,
            cwd=self.base,
        )
        log.close()
        self.stack.procs[name] = proc
        self._save()
        return proc

    def _postgres_user(self) -> str | None:
        """``nobody`` when running as root (PostgreSQL refuses root), else the current user."""
        return "nobody" if os.geteuid() == 0 else None

    def _start_postgres(self) -> None:
        user = self._postgres_user()
        data = self.base / "postgres"
        sockets = self.base / "postgres-socket"
        for folder in (data, sockets):
            folder.mkdir(mode=0o700, exist_ok=True)
            if user:
                entry = pwd.getpwnam(user)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "HOME": str(self.base)}
        with (self.logs / "postgres.log").open("ab") as log:
            done = subprocess.run(
                [_postgres_bin("initdb"), "-D", str(data / "data"), "-U", "airflow", "--auth=trust",
                 "-E", "UTF8", "--no-sync"],
                env=env, stdout=log, stderr=log, user=user, cwd=self.base, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"cluster: initdb failed (as {user or 'the current user'}; the folder {self.base} must be "
                f"reachable by that user); see {self.logs / 'postgres.log'}"
            )
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(sockets),
            "max_connections": "300",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_lock_waits": "on",
            "deadlock_timeout": "1s",
        }
        args = [_postgres_bin("postgres"), "-D", str(data / "data"), "-p", str(self.ports["postgres"])]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self._spawn("postgres", args, env=env, user=user)
        _wait(self._database_ready, 60, "PostgreSQL", self.logs / "postgres.log")
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.ports["postgres"], user="airflow", dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE airflow")
        conn.close()

    def _database_ready(self) -> bool:
        import psycopg2

        try:
            psycopg2.connect(
                host="127.0.0.1",
                port=self.ports["postgres"],
                user="airflow",
                dbname="postgres",
                connect_timeout=2,
            ).close()
        except psycopg2.OperationalError:
            return False
        return True

    def _start_redis(self) -> None:
        folder = self.base / "redis"
        folder.mkdir(exist_ok=True)
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.ports["redis"]), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder),
        ]  # fmt: skip
        self._spawn("redis", args, env=dict(os.environ))
        _wait(lambda: _port_open(self.ports["redis"]), 30, "Redis", self.logs / "redis.log")

    def _start_emulator(self) -> None:
        args = [
            str(BIN / "tuning-api-emulator"), "--port", str(self.ports["emulator"]),
            "--step-seconds", str(self.step_seconds), "--api-key", EMULATOR_API_KEY, "--seed", "15",
        ]  # fmt: skip
        self._spawn("emulator", args, env=dict(os.environ))
        _wait(lambda: _port_open(self.ports["emulator"]), 30, "the emulator", self.logs / "emulator.log")

    def start_airflow(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or restart) one Airflow process of the cluster by name (``worker-2`` ...)."""
        assert self.stack is not None
        env = {**self.stack.env, HOSTNAME_ENV: name}
        airflow = str(BIN / "airflow")
        if name in WORKERS:
            # Each worker serves its own task logs: its own port.
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.ports[f"{name}-logs"])
            args = [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h", "--without-gossip",
                    "--without-mingle"]  # fmt: skip
        elif name in TRIGGERERS:
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(self.ports[f"{name}-logs"])
            args = [airflow, "triggerer"]
        elif name == "api-server":
            args = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.ports["api"])]
        else:
            args = [airflow, name]
        return self._spawn(name, args, env=env)

    def up(self) -> None:
        """Start every process; on any failure stop what was started and raise."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        if self.state_file.exists() and any(live_members(p) for p in self._saved_pids().values()):
            raise RuntimeError(f"cluster: already running from {self.base} (run `down` first)")
        if (self.base / "postgres").exists():
            shutil.rmtree(self.base / "postgres")  # a throw-away database: every `up` starts afresh
        names = ["postgres", "redis", "emulator", "api", *(f"{n}-logs" for n in (*WORKERS, *TRIGGERERS))]
        self.ports = {name: free_port() for name in names}
        if not self.fernet_key:
            from cryptography.fernet import Fernet

            self.fernet_key = Fernet.generate_key().decode()
        self.stack = AirflowStack(self.home, self.dags_folder, extra_env={})
        self.stack.port = self.ports["api"]
        self.stack.api = self.api_url
        self.stack.env.update(
            {
                "AIRFLOW__API__PORT": str(self.ports["api"]),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(24),
                **self._airflow_env(),
            }
        )
        self.stack.logs = self.logs
        try:
            self._start_postgres()
            self._start_redis()
            self._start_emulator()
            self.stack.migrate()
            for name in self.airflow_processes:
                self.start_airflow(name)
            if "api-server" not in self.airflow_processes:
                return
            self.stack.wait_for(
                lambda: self.stack is not None and self.stack._get("/api/v2/monitor/health") is not None,
                180,
                "the api-server",
            )
            self.stack.wait_for(self._healthy, 180, "the scheduler, dag-processor and triggerers to report")
        except BaseException:
            self.down()
            raise

    def _healthy(self) -> bool:
        assert self.stack is not None
        health = self.stack._get("/api/v2/monitor/health")
        if not health:
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

    # --- state, status, stop -------------------------------------------------------------------

    def _saved_pids(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.state_file.read_text())["pids"].items()}
        except (OSError, ValueError, KeyError):
            return {}

    def _save(self) -> None:
        assert self.stack is not None
        state = {
            "base": str(self.base),
            "ports": self.ports,
            "api": self.api_url,
            "emulator": self.emulator_url,
            "database": self.db_url,
            "pids": {name: proc.pid for name, proc in self.stack.procs.items()},
            "env": {k: v for k, v in self.stack.env.items() if k.startswith("AIRFLOW")},
        }
        self.state_file.touch(mode=0o600)
        self.state_file.write_text(json.dumps(state, indent=2))

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one process by name (``sig`` first, SIGKILL if it lingers)."""
        proc = self.stack.procs.pop(name, None) if self.stack else None
        pid = proc.pid if proc else self._saved_pids().get(name)
        if pid is None:
            return
        # PostgreSQL: SIGINT is its "fast" shutdown (SIGTERM would wait for every client).
        stop_group(pid, signal.SIGINT if name == "postgres" and sig == signal.SIGTERM else sig)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # reap it
        if self.stack is not None:
            self._save()

    def down(self) -> None:
        """Stop every process: the Airflow ones together, then the servers they use; forget the PIDs."""
        pids = self._saved_pids()
        started = dict(self.stack.procs) if self.stack is not None else {}
        pids.update({name: proc.pid for name, proc in started.items()})
        if self.stack is not None:
            self.stack.procs.clear()
        clients = [pids[name] for name in AIRFLOW_PROCESSES if name in pids]
        for pgid in clients:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        for pgid in clients:
            stop_group(pgid, signal.SIGTERM, timeout=20)
        for name in ("emulator", "redis", "postgres"):
            if name in pids:
                # PostgreSQL: SIGINT is its "fast" shutdown (SIGTERM would wait for every client).
                stop_group(pids[name], signal.SIGINT if name == "postgres" else signal.SIGTERM)
        for proc in started.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # reap it
        if self.state_file.exists():
            state = json.loads(self.state_file.read_text())
            state["pids"] = {}
            self.state_file.write_text(json.dumps(state, indent=2))


def status(base: Path) -> int:
    """Print each process of the cluster in ``base`` (alive or not) and the api-server's health.

    :return: 0 when every process is alive, 1 otherwise.
    """
    state_file = base / STATE_FILE
    if not state_file.exists():
        print(f"cluster: no cluster in {base}")
        return 1
    state = json.loads(state_file.read_text())
    pids = state.get("pids", {})
    ok = bool(pids)
    for name in PROCESSES:
        pid = pids.get(name)
        alive = bool(pid and live_members(int(pid)))
        ok = ok and alive
        print(f"{name:14} {'up' if alive else 'DOWN':5} pid {pid or '-'}")
    print(f"api-server     {state['api']}")
    print(f"emulator       {state['emulator']}")
    print(f"database       {state['database']}")
    print(f"logs           {base / 'logs'}")
    if ok:
        import requests

        try:
            health = requests.get(f"{state['api']}/api/v2/monitor/health", timeout=5).json()
            print("health         " + ", ".join(f"{k}: {v.get('status')}" for k, v in health.items()))
        except (requests.RequestException, ValueError) as err:
            print(f"health         unavailable ({err})")
    return 0 if ok else 1


def up(base: Path, **options: Any) -> Cluster:
    """Install what is missing and start a cluster in ``base`` (options: see :class:`Cluster`)."""
    ensure_installed()
    cluster = Cluster(base=base, **options)
    cluster.up()
    return cluster


def main(argv: Sequence[str] | None = None) -> int:
    """``up``, ``status`` or ``down`` the cluster in ``--dir``."""
    parser = argparse.ArgumentParser(prog="cluster.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "status", "down"))
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"cluster folder (default {DEFAULT_DIR})"
    )
    parser.add_argument("--dags-folder", type=Path, default=ROOT / "dags", help="DAGs folder (default dags/)")
    parser.add_argument("--step-seconds", type=float, default=0.5, help="emulated seconds per tuning step")
    args = parser.parse_args(argv)
    base = args.dir.resolve()
    if args.command == "status":
        return status(base)
    if args.command == "down":
        Cluster(base=base).down()
        print(f"cluster: stopped (logs kept in {base / 'logs'})")
        return 0
    cluster = up(base, dags_folder=args.dags_folder.resolve(), step_seconds=args.step_seconds)
    status(base)
    print(f"cluster: up; `python scripts/cluster.py down --dir {base}` stops it")
    return 0 if cluster.stack else 1


if __name__ == "__main__":
    sys.exit(main())
