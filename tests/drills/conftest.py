"""Failure drills: the service as a real process, real (private) Redis and PostgreSQL, load.

Reuses the service tests' private-server helpers and fixtures (tests/service/conftest.py)
rather than duplicating them; adds what drills need on top: the service run as
``python -m app serve``, a background load generator, and a delaying TCP proxy that
turns a healthy Redis into a slow one.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import (  # noqa: F401  (fixtures re-exported for this directory)
    SHARED_PG,
    SHARED_REDIS,
    TEST_KEY,
    PrivatePostgres,
    PrivateRedis,
    free_port,
    model_dir,
    pg_schema,
    private_pg,
    private_redis,
    redis_prefix,
    run_id,
)
from tests.service.helpers import EXAMPLE

ROOT = Path(__file__).parents[2]
HEADERS = {"X-API-Key": TEST_KEY, "Content-Type": "application/json"}


def transaction(tag: str, i: int) -> dict[str, Any]:
    """The example transaction with a unique id; cards cycle through a small pool so velocity matters."""
    t = copy.deepcopy(EXAMPLE)
    t["transaction_id"] = f"{tag}-{i:06d}"
    t["card_token"] = f"ctok_{tag}_{i % 7}"
    t["amount"] = f"{10 + i % 90}.{i % 100:02d}"
    return t


class ServiceProcess:
    """``python -m app serve`` on a free port with the given FRAUDSTACK_* settings."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / f"service-{self.port}.log"
        self._log = self.log_path.open("wb")
        base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTACK_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(self.port)], cwd=ROOT,
                                     env={**base, "FRAUDSTACK_LOG_LEVEL": "WARNING", **env},
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Until /health/live answers (the model may still be not ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"service not listening after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        """Everything the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"service ignored SIGTERM for {timeout} s:\n{self.output()}") from None
        self._log.close()
        return self.proc.returncode


@pytest.fixture()
def service_process(tmp_path: Path, model_dir: Path) -> Iterator[Any]:
    """Factory of service processes for one test; any still running is stopped at the end."""
    started: list[ServiceProcess] = []

    def start(env: dict[str, str], wait: bool = True) -> ServiceProcess:
        proc = ServiceProcess({"FRAUDSTACK_API_KEYS": TEST_KEY, "FRAUDSTACK_DATA_DIR": str(tmp_path / "data"),
                               "FRAUDSTACK_MODEL_DIR": str(model_dir), **env},
                              tmp_path)
        started.append(proc)
        if wait:
            proc.wait_listening()
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


@dataclass
class Outcome:
    """One request of a load run."""

    index: int
    body: bytes
    started: float
    finished: float = 0.0
    status: int | None = None
    json: dict[str, Any] | None = None
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.finished - self.started


@dataclass
class Load:
    """Concurrent clients posting /v1/score in a background thread until stopped.

    ``repeat_every=k`` re-sends, every k-th request, the exact body of an earlier one
    (a client retry): the audit trail must record it once.
    """

    url: str
    tag: str
    concurrency: int = 4
    repeat_every: int = 0
    pause: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._next = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """Stop sending; wait for the requests in flight; return every outcome."""
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "load generator did not stop"
        return self.outcomes

    def _body(self) -> tuple[int, bytes]:
        import orjson

        i = self._next
        self._next += 1
        if self.repeat_every and i % self.repeat_every == self.repeat_every - 1 and i > 1:
            return i, self.outcomes[i // 2].body
        return i, orjson.dumps(transaction(self.tag, i))

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            i, body = self._body()
            out = Outcome(i, body, time.monotonic())
            self.outcomes.append(out)
            try:
                r = await http.post("/v1/score", content=body, headers=HEADERS)
                out.status = r.status_code
                out.json = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                out.error = f"{type(exc).__name__}: {exc}"
            out.finished = time.monotonic()
            if self.pause:
                await asyncio.sleep(self.pause)

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=10, limits=limits) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.concurrency)))


class DelayProxy:
    """A TCP proxy to Redis that delays every reply by ``delay`` seconds (order kept).

    Counts the scripts sent through it (EVAL/EVALSHA) so a test can tell when requests
    are inside the service, waiting on Redis.
    """

    def __init__(self, upstream_port: int, delay: float = 0.0) -> None:
        self.upstream_port, self.delay = upstream_port, delay
        self.port = free_port()
        self.scripts = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "proxy did not start"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def upstream() -> None:
            while data := await reader.read(65536):
                self.scripts += data.upper().count(b"EVAL")
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            # Each chunk is released `delay` after it arrived: latency added, order kept.
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def release() -> None:
                while True:
                    due, data = await queue.get()
                    if not data:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()
                writer.close()

            releaser = asyncio.ensure_future(release())
            while data := await up_reader.read(65536):
                queue.put_nowait((time.monotonic() + self.delay, data))
            queue.put_nowait((0.0, b""))
            await releaser

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            up_writer.close()

    def close(self) -> None:
        def shutdown() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=5)


@pytest.fixture()
def slow_redis(private_redis: PrivateRedis) -> Iterator[DelayProxy]:
    """A private Redis behind a delaying proxy (delay 0 until the test sets it)."""
    proxy = DelayProxy(private_redis.port)
    yield proxy
    proxy.close()


def metric(text: str, name: str) -> float:
    """Value of an unlabelled Prometheus sample."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


__all__ = ["DelayProxy", "Load", "Outcome", "ServiceProcess", "metric", "transaction", "wait_until"]
