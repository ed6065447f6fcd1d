"""A PostgreSQL cluster of our own in a temporary directory (initdb + pg_ctl).

Used by the fault drills (which stop and start it) and by the benchmarks (which pin
it to the load generator's core, so the scoring worker keeps its core to itself).
Runs the server binaries as the ``postgres`` user when invoked as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """A private cluster: ``start()``, ``stop()``, ``destroy()``; ``url`` once started.

    ``durable=False`` turns fsync off (tests: speed, nothing to keep); benchmarks keep
    the defaults, so an audit commit costs what it costs in production.
    ``cpus`` pins the server (and every backend it forks) to those cores.
    """

    def __init__(self, durable: bool = False, cpus: str | None = None) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = bins[-1].parent
        self.durable, self.cpus = durable, cpus
        self.dir = Path(tempfile.mkdtemp(prefix="fs-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])

    @property
    def url(self) -> str:
        """Connection URL (trust authentication, database ``postgres``)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, argv: Sequence[str]) -> None:
        prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
        pin = ["taskset", "-c", self.cpus] if self.cpus else []
        subprocess.run(pin + prefix + list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=self.dir)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c shared_buffers=64MB"
        if not self.durable:
            opts += " -c fsync=off"
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                           "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate)."""
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def running(self) -> bool:
        """Whether the server's pid file exists."""
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server if running and delete the cluster."""
        if self.running():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
