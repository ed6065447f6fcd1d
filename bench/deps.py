"""Redis and PostgreSQL of the benchmark's own, pinned to the load generator's core.

The issue's setup is one core for the scoring worker and the other for the load
generator; the worker's dependencies go with the load generator, so that nothing
but the worker runs on its core and no other user of the machine's shared servers
skews the figures. PostgreSQL keeps its durable defaults (fsync and synchronous
commit on): an audit commit costs what it costs in production.

``--redis-url`` / ``--database-url`` of a benchmark select shared servers instead;
``private`` (the default) starts these.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tools.localpg import PrivatePostgres

PRIVATE = "private"


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_redis(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"private redis-server on port {port} did not answer")


@contextmanager
def dependencies(redis_url: str, database_url: str, core: str) -> Iterator[tuple[str, str, str]]:
    """Yield (redis_url, database_url, description), starting private servers on ``core`` where asked."""
    redis_proc = pg = None
    workdir = tempfile.mkdtemp(prefix="fs-bench-redis-")
    notes = []
    try:
        if redis_url == PRIVATE:
            port = free_port()
            redis_proc = subprocess.Popen(["taskset", "-c", core, "redis-server", "--port", str(port), "--bind",
                                           "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_redis(port)
            redis_url = f"redis://127.0.0.1:{port}/0"
            notes.append(f"private redis-server on core {core}")
        else:
            notes.append(f"Redis at {redis_url}")
        if database_url == PRIVATE:
            pg = PrivatePostgres(durable=True, cpus=core)
            pg.start()
            database_url = pg.url
            notes.append(f"private PostgreSQL (fsync on) on core {core}")
        elif database_url:
            notes.append(f"PostgreSQL at {database_url.split('@')[-1]}")
        else:
            notes.append("SQLite audit log")
        yield redis_url, database_url, "; ".join(notes)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        if pg is not None:
            pg.destroy()
        subprocess.run(["rm", "-rf", workdir], check=False)
