"""app.resp: the pipelined Redis connection of the velocity script, against the real
Redis on 127.0.0.1:6379 and against a scripted fake server for the failure cases."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from typing import Any

import hiredis
import pytest
import redis

from app.resp import RespClient, RespError, ScriptRunner

URL = "redis://127.0.0.1:6379/0"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module", autouse=True)
def _redis_up() -> None:
    redis.Redis.from_url(URL).ping()  # the real server must be there: no skip


def test_replies_come_back_to_their_callers_in_order_under_concurrency() -> None:
    key = f"test:resp:{uuid.uuid4().hex}"

    async def main() -> list[Any]:
        client = RespClient(URL, timeout=2)
        try:
            replies = await asyncio.gather(*[client.execute("INCR", key) for _ in range(500)])
            await client.execute("DEL", key)
            return replies
        finally:
            await client.aclose()

    # Every caller gets its own increment: one connection, 500 pipelined calls.
    assert sorted(run(main())) == list(range(1, 501))


def test_error_replies_raise_and_leave_the_connection_usable() -> None:
    async def main() -> tuple[str, Any]:
        client = RespClient(URL, timeout=2)
        try:
            with pytest.raises(RespError) as err:
                await client.execute("NOSUCHCOMMAND", "x")
            return str(err.value), await client.execute("PING")
        finally:
            await client.aclose()

    message, pong = run(main())
    assert message.startswith("ERR unknown command")
    assert pong == b"PONG"


def test_execute_many_keeps_order_and_returns_error_replies_in_place() -> None:
    key = f"test:resp:{uuid.uuid4().hex}"

    async def main() -> list[Any]:
        client = RespClient(URL, timeout=2)
        try:
            out = await client.execute_many([("SET", key, "7"), ("INCR", key), ("HGET", key, "f"), ("GET", key),
                                             ("DEL", key)])
            assert await client.execute_many([]) == []
            return out
        finally:
            await client.aclose()

    out = run(main())
    assert out[:2] == [b"OK", 8]
    assert isinstance(out[2], RespError) and str(out[2]).startswith("WRONGTYPE")
    assert out[3:] == [b"8", 1]


def test_execute_many_writes_an_iterator_command_by_command() -> None:
    key = f"test:resp:{uuid.uuid4().hex}"
    seen: list[Any] = []

    def commands() -> Any:
        yield ("SET", key, "1")
        # the first command reached Redis before the next one is even built
        other = redis.Redis.from_url(URL)
        for _ in range(100):
            seen.append(other.get(key))
            if seen[-1] is not None:
                break
            time.sleep(0.01)
        other.close()
        yield ("INCR", key)
        yield ("HGET", key, "f")
        yield ("DEL", key)

    async def main() -> list[Any]:
        client = RespClient(URL, timeout=2)
        try:
            out = await client.execute_many(commands())
            assert await client.execute_many(iter(())) == []
            return out
        finally:
            await client.aclose()

    out = run(main())
    assert seen[-1] == b"1"
    assert out[:2] == [b"OK", 2] and isinstance(out[2], RespError) and out[3] == 1


def test_an_iterator_goes_after_the_commands_buffered_in_the_same_step() -> None:
    key = f"test:resp:{uuid.uuid4().hex}"

    async def main() -> tuple[Any, list[Any]]:
        client = RespClient(URL, timeout=2)
        try:
            await client.execute("PING")  # connected: both calls below write in one loop step
            # the INCR is buffered until the end of the step; the iterator's commands are
            # written at once, after it
            incr, out = await asyncio.gather(client.execute("INCR", key),
                                             client.execute_many(iter([("GET", key), ("DEL", key)])))
            return incr, out
        finally:
            await client.aclose()

    incr, out = run(main())
    assert incr == 1 and out == [b"1", 1]


def test_a_batch_timing_out_raises_once_and_logs_nothing() -> None:
    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: reported.append(context))
        client = RespClient(URL, timeout=2)
        try:
            busy = ("EVAL", "local i = 0 while i < 2e6 do i = i + 1 end return i", 0)  # some ms of Redis
            with pytest.raises(TimeoutError, match="batch not answered within"):
                await client.execute_many([busy] + [("PING",)] * 50, timeout=0.001)
            assert await client.execute("PING") == b"PONG"  # late replies dropped in order
            gc.collect()
            await asyncio.sleep(0)
            return reported
        finally:
            await client.aclose()

    assert run(main()) == []


def test_script_runner_loads_the_script_after_a_flush() -> None:
    key = f"test:resp:{uuid.uuid4().hex}"
    source = "return redis.call('INCRBY', KEYS[1], ARGV[1]) -- test_resp " + uuid.uuid4().hex

    async def main() -> list[Any]:
        client = RespClient(URL, timeout=2)
        script = client.register_script(source)
        try:
            assert isinstance(script, ScriptRunner)
            first = await script([key], [2])  # never loaded: NOSCRIPT, load, retry
            # A restarted Redis (or a failover) has forgotten it again.
            await client.execute("SCRIPT", "FLUSH")
            second = await script([key], [3])
            await client.execute("SCRIPT", "FLUSH")
            batch = await script.many([([key], [1]), ([key], [1]), ([key], [1])])
            # calls from an iterator: sent as produced, retried in order after NOSCRIPT
            await client.execute("SCRIPT", "FLUSH")
            streamed = await script.many(([key], [n]) for n in (10, 20, 30))
            await client.execute("DEL", key)
            return [first, second, *batch, *streamed]
        finally:
            await client.aclose()

    assert run(main()) == [2, 5, 6, 7, 8, 18, 38, 68]


def test_commands_of_one_loop_step_go_out_in_one_write_in_call_order() -> None:
    async def main() -> tuple[list[Any], list[bytes]]:
        client = RespClient(URL, timeout=2)
        try:
            await client.execute("PING")  # connected
            transport = client._protocol.transport  # type: ignore[union-attr]
            writes: list[bytes] = []
            real = transport.write

            def counting(data: bytes) -> None:
                writes.append(bytes(data))
                real(data)

            transport.write = counting  # type: ignore[method-assign]
            replies = await asyncio.gather(client.execute("ECHO", "a"), client.execute("ECHO", "b"),
                                           client.execute_many([("ECHO", "c"), ("ECHO", "d")]))
            replies.append(await client.execute("ECHO", "e"))  # a later step: a write of its own
            return replies, writes
        finally:
            await client.aclose()

    replies, writes = run(main())
    assert replies == [b"a", b"b", [b"c", b"d"], b"e"]
    assert writes == [b"".join(hiredis.pack_command(("ECHO", x)) for x in "abcd"), hiredis.pack_command(("ECHO", "e"))]


def test_commands_buffered_when_the_connection_closes_fail_and_are_not_sent() -> None:
    async def main() -> tuple[list[Any], Any, list[bytes]]:
        client = RespClient(URL, timeout=2)
        try:
            await client.execute("PING")
            protocol = client._protocol
            assert protocol is not None and protocol.transport is not None
            writes: list[bytes] = []
            protocol.transport.write = writes.append  # type: ignore[method-assign]
            calls = [asyncio.ensure_future(client.execute("ECHO", x)) for x in "ab"]
            await asyncio.sleep(0)  # both buffered, not yet flushed
            assert len(protocol._out) == 2
            protocol.transport.close()
            results = await asyncio.gather(*calls, return_exceptions=True)
            return results, await client.execute("ECHO", "again"), writes  # reconnects
        finally:
            await client.aclose()

    results, again, writes = run(main())
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert writes == []  # nothing written to the closing connection
    assert again == b"again"


class FakeRedis:
    """A RESP server on 127.0.0.1 that records commands and answers as the test says."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.commands: list[list[bytes]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "FakeRedis":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        parser = hiredis.Reader()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            parser.feed(data)
            while (cmd := parser.gets()) is not False:
                self.commands.append(cmd)
                await self.answer(cmd, writer)


def test_auth_and_select_are_sent_on_connect_in_that_order() -> None:
    async def answer(cmd: list[bytes], writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK\r\n" if cmd[0] != b"PING" else b"+PONG\r\n")

    async def main() -> list[list[bytes]]:
        async with FakeRedis(answer) as fake:
            client = RespClient(f"redis://svc:not%2Fa-secret@127.0.0.1:{fake.port}/3", timeout=1)
            assert await client.execute("PING") == b"PONG"
            await client.aclose()
            return fake.commands

    assert run(main()) == [[b"AUTH", b"svc", b"not/a-secret"], [b"SELECT", b"3"], [b"PING"]]


def test_a_late_reply_is_dropped_in_order_and_the_next_call_gets_its_own() -> None:
    async def answer(cmd: list[bytes], writer: asyncio.StreamWriter) -> None:
        if cmd[1] == b"slow":
            await asyncio.sleep(0.3)  # past the caller's timeout, then answer anyway
        writer.write(b"$" + str(len(cmd[1])).encode() + b"\r\n" + cmd[1] + b"\r\n")

    async def main() -> tuple[float, Any]:
        async with FakeRedis(answer) as fake:
            client = RespClient(f"redis://127.0.0.1:{fake.port}/0", timeout=0.05)
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(TimeoutError):
                await client.execute("ECHO", "slow")
            waited = loop.time() - start
            reply = await client.execute("ECHO", "fast", timeout=2)
            await client.aclose()
            return waited, reply

    waited, reply = run(main())
    assert 0.04 <= waited < 0.2
    assert reply == b"fast"  # not the late "slow": the FIFO stayed in step


def test_a_lost_connection_fails_waiting_calls_and_the_next_call_reconnects() -> None:
    async def answer(cmd: list[bytes], writer: asyncio.StreamWriter) -> None:
        if cmd[1] == b"drop":
            writer.close()
            return
        writer.write(b"+" + cmd[1] + b"\r\n")

    async def main() -> tuple[Any, int]:
        async with FakeRedis(answer) as fake:
            client = RespClient(f"redis://127.0.0.1:{fake.port}/0", timeout=1)
            with pytest.raises(ConnectionError):
                await client.execute("ECHO", "drop")
            assert not client.connected
            reply = await client.execute("ECHO", "back")
            await client.aclose()
            return reply, len(fake.writers)

    assert run(main()) == (b"back", 2)


def test_a_refused_connection_is_a_connection_error() -> None:
    async def main() -> None:
        client = RespClient("redis://127.0.0.1:1/0", timeout=0.2)
        await client.execute("PING")

    with pytest.raises(ConnectionError):
        run(main())


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:6379", "scheme must be redis://, rediss:// or unix://"),
    ("redis://127.0.0.1:6379/zero", "database must be a number"),
    ("unix://", "unix:// needs the socket's path"),
    ("unix:///tmp/redis.sock?db=one", "database must be a number"),
])
def test_bad_urls_are_refused_naming_the_problem(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RespClient(url, timeout=1)


def test_a_unix_socket_url_reaches_its_database(tmp_path: Any) -> None:
    """The service accepts unix:// Redis URLs (app.settings); the velocity connection must too."""
    import subprocess
    import time

    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly",
                             "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

        async def main() -> tuple[Any, Any]:
            client = RespClient(f"unix://{sock}?db=2", timeout=2)
            try:
                await client.execute("SET", "k", "in-db-2")
                return await client.execute("GET", "k"), await client.execute("CLIENT", "INFO")
            finally:
                await client.aclose()

        value, info = run(main())
        assert value == b"in-db-2"
        assert b" db=2 " in info  # SELECT 2 was sent on connect
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_reply_that_arrived_while_the_loop_was_stalled_is_taken_not_timed_out() -> None:
    # The service runs on uvloop, which runs due timers before it polls for I/O: after a
    # stall of the event loop longer than the timeout, the reply already sitting in the
    # socket must still win over the call's own timer.
    import time

    import uvloop

    async def main() -> list[Any]:
        client = RespClient(URL, timeout=0.02)
        try:
            await client.execute("PING")  # connected
            out = []
            for _ in range(5):
                call = asyncio.ensure_future(client.execute("ECHO", "x"))
                await asyncio.sleep(0)  # sent (at the end of this step)
                await asyncio.sleep(0)
                time.sleep(0.06)  # the loop stalls past the timeout; Redis answers meanwhile
                out.append(await asyncio.gather(call, return_exceptions=True))
            return out
        finally:
            await client.aclose()

    assert uvloop.run(main()) == [[b"x"]] * 5
