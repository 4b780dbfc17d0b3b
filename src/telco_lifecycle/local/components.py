"""Airflow's components as separate local processes, as in production: api-server, scheduler,
dag-processor and triggerer (LocalExecutor), or with a broker URL the CeleryExecutor plus a
Celery worker. Used by `make airflow` and by the end-to-end tests.

Each component starts in its own session (its own process group) and logs to
`$AIRFLOW_HOME/<component>.log`; `stop()` signals every group (`kill -- -PGID`), then any
process still running on this AIRFLOW_HOME (task processes make their own groups).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

COMPONENTS = (("api-server",), ("scheduler",), ("dag-processor",), ("triggerer",))
CELERY_WORKER = ("celery", "worker")
HEALTH_PATH = "/api/v2/monitor/health"
# What the api-server's health endpoint reports on; each must say "healthy".
HEALTH_CHECKS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine_parallelism() -> int:
    """Task slots for this machine: two per usable core, at least four."""
    return max(4, 2 * len(os.sched_getaffinity(0)))


def airflow_command() -> str:
    return str(Path(sys.executable).parent / "airflow")


class LocalAirflow:
    """One Airflow installation on `env["AIRFLOW_HOME"]`; a context manager that always stops it."""

    def __init__(self, env: dict[str, str], api_port: int, username: str = "admin", password: str = "admin",
                 broker_url: str | None = None, host: str = "127.0.0.1", others: dict[str, str] | None = None):
        """`others`: more logins (user -> password), e.g. a second person to approve what
        `username` triggers (separation of duties)."""
        self.home = Path(env["AIRFLOW_HOME"])
        self.api_port = api_port
        self.url = f"http://{host}:{api_port}"
        self.username, self.password = username, password
        self.logins = {username: password, **(others or {})}
        self.broker_url = broker_url
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            **env,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if broker_url else "LocalExecutor",
            # LocalExecutor starts `parallelism` workers: Airflow's 32 swamp a laptop.
            "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM") or str(machine_parallelism()),
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:admin" for user in self.logins),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # The audit report reads the task logs through the REST API, as in production.
            "LIFECYCLE_AIRFLOW_API_URL": self.url,
            "LIFECYCLE_AIRFLOW_API_USERNAME": username,
            "LIFECYCLE_AIRFLOW_API_PASSWORD": password,
            # Own log-server ports, so that several installations (and a production one on
            # 8793/8794) can run side by side on one machine.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        if broker_url:
            self.env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
        # The `airflow` sub-commands this installation runs, one process each.
        self.components = COMPONENTS + ((CELERY_WORKER,) if broker_url else ())
        self.processes: dict[str, subprocess.Popen] = {}

    def prepare(self) -> None:
        """Migrate the metadata database and write the login's password file."""
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run([airflow_command(), "db", "migrate"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps(self.logins) + "\n", encoding="utf-8")
        passwords.chmod(0o600)

    def start(self, timeout: float = 240) -> LocalAirflow:
        """Start every component and wait until the api-server reports all of them healthy."""
        try:
            for args in self.components:
                name = "-".join(args)
                log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
                self.processes[name] = subprocess.Popen(
                    [airflow_command(), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
                log.close()
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
            if dead:
                raise RuntimeError(f"Airflow component(s) exited: {dead}\n{self.log_tails()}")
            if self._healthy():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow not healthy after {timeout:.0f} s\n{self.log_tails()}")
            time.sleep(1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + HEALTH_PATH, timeout=5) as response:
                health = json.load(response)
        except OSError:
            return False
        if any((health.get(check) or {}).get("status") != "healthy" for check in HEALTH_CHECKS):
            return False
        return not self.broker_url or self._celery_worker_ready()

    def _celery_worker_ready(self) -> bool:
        from celery import Celery

        app = Celery(broker=self.broker_url)
        try:
            return bool(app.control.inspect(timeout=1).ping())
        finally:
            app.close()

    def log_tails(self, lines: int = 30) -> str:
        tails = []
        for name in self.processes:
            path = self.home / f"{name}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            tails.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(tails)

    def stop(self, grace: float = 20) -> None:
        """SIGTERM every process group, SIGKILL what is left after `grace` seconds."""
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        self.processes.clear()
        deadline = time.monotonic() + 10
        while (leftovers := self.leftover_processes()) and time.monotonic() < deadline:
            for pid in leftovers:
                _signal_group(pid, signal.SIGKILL)
                _kill(pid)
            time.sleep(0.2)

    def leftover_processes(self) -> list[int]:
        """Processes still running with this AIRFLOW_HOME (e.g. task processes in their own groups)."""
        marker = f"AIRFLOW_HOME={self.home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in environ and state != "Z":
                found.append(int(entry.name))
        return found

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A REST API bearer token: POST /auth/token (outside /api/v2, so not in the client)."""
        request = urllib.request.Request(
            self.url + "/auth/token",
            data=json.dumps({"username": username or self.username, "password": password or self.password}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["access_token"]

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_dag(dags_api, dag_id: str, timeout: float = 120) -> None:
    """Until the dag-processor has parsed the file and the API knows the DAG (`dags_api`:
    the official client's DAGApi)."""
    from airflow_client.client import ApiException

    deadline = time.monotonic() + timeout
    while True:
        try:
            dags_api.get_dag(dag_id)
            return
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(1)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (`kill -- -PGID` of `make airflow`) unwind the same way, so every
    component is stopped; further signals are ignored so they cannot cut the shutdown short."""
    def interrupt(signum, frame):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)


def main() -> None:
    """`make airflow`: the four components on the local environment until Ctrl-C or SIGTERM."""
    from telco_lifecycle.local.env import local_environment

    _stop_on_signals()
    port = int(os.environ.get("AIRFLOW_API_PORT", "8080"))
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "admin")
    # A second login: approvals are answered by someone other than the user who triggered the run.
    approver_password = os.environ.get("AIRFLOW_APPROVER_PASSWORD", "approver")
    airflow = LocalAirflow(local_environment(), api_port=port, password=password,
                           others={"approver": approver_password})
    try:
        airflow.prepare()
        print(f"Starting Airflow (logs in {airflow.home}/*.log) ...", flush=True)
        with airflow:
            print(f"Airflow UI and REST API: {airflow.url}  (user {airflow.username}, password {airflow.password};"
                  f" approvals as user approver, password {approver_password}); Ctrl-C stops it.", flush=True)
            while all(p.poll() is None for p in airflow.processes.values()):
                time.sleep(2)
            print(f"An Airflow component exited:\n{airflow.log_tails()}", file=sys.stderr)
            sys.exit(1)
    except KeyboardInterrupt:
        print("Airflow stopped.", flush=True)


if __name__ == "__main__":
    main()
