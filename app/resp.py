"""A lean, pipelined Redis connection for the scoring hot path.

Why not redis-py's asyncio client for this one call: a velocity ``observe`` through it
cost 238 µs of client CPU against 65 µs through this module in the same run
(``python -m bench.probe --only client``; docs/BENCHMARKS.md), spent on its connection
pool, retry wrapper, a ``wait_for`` task per call and command packing. This module keeps one connection
per worker process and pipelines every call on it: a call packs its command with
hiredis (C), writes it, and waits on a future that the protocol resolves when its
reply arrives (Redis answers in order, so a FIFO of futures is enough). Replies are
parsed by ``hiredis.Reader`` (C). Everything else (rate limits, nonces, health)
keeps using redis-py.

Failure semantics match what the service expects of the velocity store:

* a call that gets no reply within its ``timeout`` fails with ``TimeoutError``;
  its late reply is still consumed in order and dropped, so the connection stays
  usable;
* a lost connection fails every waiting call with ``ConnectionError``; the next
  call reconnects (bounded by ``connect_timeout``);
* ``rediss://`` URLs use TLS with certificate verification (ElastiCache in-transit
  encryption), ``unix:///path?db=N`` a local socket; a password in the URL is sent with
  ``AUTH`` (ElastiCache's auth token), then ``SELECT`` for a database other than 0.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

__all__ = ["RespClient", "RespError", "ScriptRunner"]


class RespError(Exception):
    """Redis answered with an error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: Any) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future[Any], asyncio.TimerHandle | None]] = deque()
        self.transport: asyncio.Transport | None = None
        self._on_lost = on_lost
        self._out: list[bytes] = []  # commands waiting for the end of the loop step

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def write(self, data: bytes) -> None:
        """Send ``data`` with the other commands written in this step of the event loop.

        One write (one system call, one wake-up of Redis) for all the scores that reach
        their velocity call in the same step, instead of one each: under load several
        do. Worker CPU per ``/v1/score`` at saturation: 320 µs writing at once against
        286 µs at the end of the step (means of three runs each, alternating, ``python
        -m bench.probe --only score``, 2026-11-22 07:47 UTC). Order is kept: ``waiting``
        is appended in call order and the buffer sent in that order.
        """
        out = self._out
        out.append(data)
        if len(out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def write_now(self, data: bytes) -> None:
        """Send ``data`` at once, after the commands buffered in this step (order kept)."""
        self._flush()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        # A connection lost or closing meanwhile: its waiting calls fail (connection_lost)
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                if self.transport is not None:
                    self.transport.close()
                return
            fut, timer = waiting.popleft()
            if timer is not None:
                timer.cancel()
            if fut.done():  # timed out or cancelled: its reply is dropped, in order
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(RespError(str(reply)))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = ConnectionError(f"redis connection lost: {exc}" if exc else "redis connection closed")
        while self.waiting:
            fut, timer = self.waiting.popleft()
            if timer is not None:
                timer.cancel()
            if not fut.done():
                fut.set_exception(error)
        self._on_lost(self)


def _expire(fut: asyncio.Future[Any], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"redis: no reply within {timeout:g}s"))


class RespClient:
    """One pipelined connection to the Redis at ``url`` (``redis://`` or ``rediss://``)."""

    def __init__(self, url: str, timeout: float, connect_timeout: float | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"redis url: scheme must be redis://, rediss:// or unix:// (got {parts.scheme or 'none'}://)")
        query = parse_qs(parts.query)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        # unix:///path/to.sock?db=N&password=... (redis-py's form): the socket path, not a host
        self.socket_path = parts.path if parts.scheme == "unix" else None
        if self.socket_path == "":
            raise ValueError("redis url: unix:// needs the socket's path")
        self.username = unquote(parts.username) if parts.username else None
        password = parts.password if parts.password else (query.get("password") or [None])[0]
        self.password = unquote(password) if password else None
        db = (query.get("db") or [""])[0] if self.socket_path is not None else parts.path.lstrip("/")
        try:
            self.db = int(db) if db else 0
        except ValueError:
            raise ValueError(f"redis url: database must be a number (got {db!r})") from None
        self.tls = parts.scheme == "rediss"
        if not timeout > 0:
            raise ValueError("redis timeout must be > 0 seconds")
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else max(timeout, 0.2)
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._protocol is not None and self._protocol.transport is not None

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self.tls else None
        if self.socket_path is not None:
            opening = loop.create_unix_connection(lambda: _Protocol(self._lost), self.socket_path)
        else:
            opening = loop.create_connection(lambda: _Protocol(self._lost), self.host, self.port, ssl=context,
                                             server_hostname=self.host if self.tls else None)
        _, protocol = await asyncio.wait_for(opening, self.connect_timeout)
        try:
            if self.password is not None:
                auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
                await self._send(protocol, auth, self.connect_timeout)
            if self.db:
                await self._send(protocol, ("SELECT", self.db), self.connect_timeout)
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        return protocol

    async def _ensure(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            return protocol
        if self._connecting is None:
            # One connection attempt at a time; concurrent callers share its outcome.
            self._connecting = asyncio.ensure_future(self._open())
            try:
                self._protocol = await self._connecting
            finally:
                self._connecting = None
            return self._protocol
        return await asyncio.shield(self._connecting)

    @staticmethod
    def _send(protocol: _Protocol, args: Sequence[Any], timeout: float) -> asyncio.Future[Any]:
        transport = protocol.transport
        if transport is None:
            raise ConnectionError("redis connection closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        timer = loop.call_later(timeout, _expire, fut, timeout)
        protocol.waiting.append((fut, timer))
        protocol.write(hiredis.pack_command(tuple(args)))
        return fut

    async def execute(self, *args: Any, timeout: float | None = None) -> Any:
        """Send one command and return its reply (``RespError`` for an error reply)."""
        protocol = await self._ensure()
        return await self._send(protocol, args, self.timeout if timeout is None else timeout)

    async def execute_many(self, commands: Iterable[Sequence[Any]], timeout: float | None = None) -> list[Any]:
        """Send ``commands`` in one write and return their replies in order.

        An error reply comes back as a ``RespError`` instance in its place (not raised),
        so one failed command does not hide the others' results. ``timeout`` bounds the
        whole batch. ``commands`` may also be an iterator: each command is then written
        as soon as it is produced, so Redis works on the first ones while the caller
        builds the rest (a batch's velocity scripts); it must not raise.
        """
        if isinstance(commands, Sequence) and not commands:
            return []
        protocol = await self._ensure()
        transport = protocol.transport
        if transport is None:
            raise ConnectionError("redis connection closed")
        loop = asyncio.get_running_loop()
        waiting = protocol.waiting
        if isinstance(commands, Sequence):
            futures = [loop.create_future() for _ in commands]
            for fut in futures:
                waiting.append((fut, None))
            protocol.write(b"".join(hiredis.pack_command(tuple(c)) for c in commands))
        else:
            # Each written at once, not at the end of the loop step: Redis starts on the
            # first while the caller builds the next (write_now sends what this step
            # buffered first, so replies keep the order of ``waiting``).
            futures = []
            for c in commands:
                fut = loop.create_future()
                futures.append(fut)
                waiting.append((fut, None))
                protocol.write_now(hiredis.pack_command(tuple(c)))
            if not futures:
                return []
        limit = self.timeout if timeout is None else timeout
        timer = loop.call_later(limit, _expire_all, futures, limit)
        try:
            # Replies arrive in order: the last one resolved means all are (or the
            # timer / a lost connection resolved them all with an error).
            await asyncio.wait([futures[-1]])
        finally:
            timer.cancel()
        out: list[Any] = []
        failure: BaseException | None = None
        # Every future's outcome is read, also after a failure: an unread exception
        # would be logged once per command ("Future exception was never retrieved").
        for fut in futures:
            exc = fut.exception()
            if isinstance(exc, RespError):
                out.append(exc)
            elif exc is not None:
                failure = failure or exc
            else:
                out.append(fut.result())
        if failure is not None:
            raise failure
        return out

    def register_script(self, source: str) -> "ScriptRunner":
        """``source`` as a script run by EVALSHA on this connection (redis-py's name for it)."""
        return ScriptRunner(self, source)

    async def aclose(self) -> None:
        """Close the connection (waiting calls fail with ``ConnectionError``)."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


def _expire_all(futures: list[asyncio.Future[Any]], timeout: float) -> None:
    error = TimeoutError(f"redis: batch not answered within {timeout:g}s")
    for fut in futures:
        if not fut.done():
            fut.set_exception(error)


class ScriptRunner:
    """A Lua script run by ``EVALSHA`` on a ``RespClient``, loaded on ``NOSCRIPT``.

    A Redis restart (or failover) forgets loaded scripts; the first call after it gets
    ``NOSCRIPT``, loads the script and retries once.
    """

    def __init__(self, client: RespClient, source: str) -> None:
        import hashlib

        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    @staticmethod
    def _command(sha: str, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", sha, len(keys), *keys, *args)

    async def __call__(self, keys: Sequence[str], args: Sequence[Any], timeout: float | None = None) -> Any:
        """The script's reply for ``keys`` and ``args``."""
        try:
            return await self.client.execute(*self._command(self.sha, keys, args), timeout=timeout)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.client.execute("SCRIPT", "LOAD", self.source, timeout=timeout)
        return await self.client.execute(*self._command(self.sha, keys, args), timeout=timeout)

    async def many(self, calls: Iterable[tuple[Sequence[str], Sequence[Any]]], timeout: float | None = None) -> list[Any]:
        """Replies of every call, sent in one write and run by Redis in order.

        Raises the first error reply (after loading the script and retrying the whole
        batch once on ``NOSCRIPT``: a call that failed with ``NOSCRIPT`` ran nothing).
        ``calls`` may be an iterator: each call is then sent as soon as it is produced
        (``RespClient.execute_many``).
        """
        if isinstance(calls, Sequence):
            commands = [self._command(self.sha, k, a) for k, a in calls]
            replies = await self.client.execute_many(commands, timeout=timeout)
        else:
            commands = []

            def produce() -> Iterator[tuple[Any, ...]]:
                for k, a in calls:
                    command = self._command(self.sha, k, a)
                    commands.append(command)  # kept for a NOSCRIPT retry
                    yield command

            replies = await self.client.execute_many(produce(), timeout=timeout)
        if any(isinstance(r, RespError) and str(r).startswith("NOSCRIPT") for r in replies):
            await self.client.execute("SCRIPT", "LOAD", self.source, timeout=timeout)
            pending = [i for i, r in enumerate(replies) if isinstance(r, RespError) and str(r).startswith("NOSCRIPT")]
            again = await self.client.execute_many([commands[i] for i in pending], timeout=timeout)
            for i, r in zip(pending, again):
                replies[i] = r
        for r in replies:
            if isinstance(r, RespError):
                raise r
        return replies
