"""Online velocity stores: the incremental form of ``app.features.offline_velocity``.

``await store.observe(txn)`` returns the velocity features of ``txn`` computed from
the transactions observed before it (the point-in-time rule of ``app.features``:
only strictly earlier timestamps, windows ``[t - W, t)``), then records ``txn``.
Observing the same ``transaction_id`` again returns the same features and records
nothing (retries are safe).

Both stores assume transactions arrive roughly in time order, as authorisations
do. A late arrival (older than the newest event already stored for an entity) is
scored from what is stored and recorded at that entity's newest time, so the
stored streams stay ordered; replaying a history in time order reproduces
``offline_features`` exactly (the parity tests prove it).

Redis layout (one round trip per ``observe``: one Lua script, EVALSHA):

* ``{prefix}:ev:{entity}:{id}``: sorted set of the entity's transactions, scored by
  epoch ms, member ``seq|sum_before|amount|txid`` (seq keeps equal scores in
  insertion order; the sequence is contiguous, so a window's count is
  seq_last - seq_first + 1 and its sum (sum_before + amount of the last) -
  sum_before of the first, from O(1) lookups: the newest member, the oldest one
  and, only when the oldest lies before the window, the first inside it);
* ``{prefix}:ds:{name}:{id}`` + ``{prefix}:dp:{name}:{id}``: counterparties (merchants,
  devices, cards) scored by last-seen time, and a hash of each one's previous
  sighting (needed so equal timestamps never see each other); exact distinct
  counts with ZCOUNT;
* ``{prefix}:pr:{name}:{a}:{b}``: sorted set of a (customer, device / ip country)
  pair's transactions;
* ``{prefix}:res:{transaction_id}``: the features returned, for idempotency, kept
  ``result_ttl`` seconds (15 min by default: retries come within seconds; a retry
  after that is recorded again).

Everything expires after the longest window (7 d) without activity and is trimmed
beyond it on a write that finds a member older than it (no trim command otherwise).
About 40 Redis commands per script call on a realistic stream, down from 67 (the
``bench.velocity_script`` micro-benchmark measures it; docs/BENCHMARKS.md). The keys of one transaction span many hash slots, so the
store needs a non-clustered Redis (ElastiCache with cluster mode disabled, which
the infrastructure provisions).
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from app.features import (
    DISTINCTS,
    ENTITIES,
    LONGEST_WINDOW_MS,
    PAIRS,
    SECONDS_SINCE_CAP,
    VELOCITY_FEATURES,
    WINDOWS_MS,
    timestamp_ms,
    velocity_defaults,
)
from app.resp import RespClient

__all__ = ["VelocityUnavailable", "MemoryVelocityStore", "RedisVelocityStore", "velocity_defaults"]


class VelocityUnavailable(Exception):
    """The velocity store could not answer in time; score with ``defaults()`` and flag degraded."""


def _key(value: Any) -> str | None:
    """The entity key of a transaction field, or None when absent."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value)
    return text or None


def _parse_txn(txn: Mapping[str, Any]) -> tuple[str, int, float]:
    try:
        txid = str(txn["transaction_id"])
        t = timestamp_ms(txn["timestamp"])
        amount = float(txn["amount"])
    except KeyError as exc:
        raise ValueError(f"velocity: transaction is missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"velocity: bad transaction: {exc}") from None
    if not txid:
        raise ValueError("velocity: transaction_id is empty")
    return txid, t, amount


# ---------------------------------------------------------------------------
# In-process store.
# ---------------------------------------------------------------------------
class _Events:
    """Times and running sums of one entity's transactions (time-ordered)."""

    __slots__ = ("times", "cum")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.cum: list[float] = [0.0]  # cum[i] = sum of amounts before event i

    def window(self, t: int, w: int) -> tuple[float, float]:
        lo = bisect.bisect_left(self.times, t - w)
        hi = bisect.bisect_left(self.times, t)
        return float(hi - lo), self.cum[hi] - self.cum[lo]

    def last_before(self, t: int) -> int | None:
        hi = bisect.bisect_left(self.times, t)
        return self.times[hi - 1] if hi else None

    def add(self, t: int, amount: float) -> None:
        stored = max(t, self.times[-1]) if self.times else t
        self.times.append(stored)
        self.cum.append(self.cum[-1] + amount)

    def trim(self, t: int) -> None:
        cut = bisect.bisect_left(self.times, t - LONGEST_WINDOW_MS)
        if cut:
            # Running sums are only ever differenced, so the offset can stay.
            del self.times[:cut]
            del self.cum[:cut]


class _Distinct:
    """Counterparties by last-seen time plus the sighting before it."""

    __slots__ = ("last", "prev")

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.prev: dict[str, int] = {}

    def count(self, t: int, w: int) -> float:
        n = 0
        for cp, s in self.last.items():
            if s < t:
                n += s >= t - w
            elif s == t:
                p = self.prev.get(cp)
                n += p is not None and p >= t - w
        return float(n)

    def add(self, cp: str, t: int) -> None:
        old = self.last.get(cp)
        if old is None:
            self.last[cp] = t
            self.prev.pop(cp, None)
        elif old < t:
            self.prev[cp] = old
            self.last[cp] = t

    def trim(self, t: int) -> None:
        cut = t - LONGEST_WINDOW_MS
        for cp in [cp for cp, s in self.last.items() if s < cut]:
            del self.last[cp]
            self.prev.pop(cp, None)


class MemoryVelocityStore:
    """In-process velocity store for laptops, tests and single-process demos.

    Memory is bounded: at most ``max_keys`` entity histories (least recently used
    evicted first) and ``max_results`` remembered results for idempotency; every
    history is trimmed to the longest window on write. Not shared between worker
    processes: use ``RedisVelocityStore`` for that.
    """

    def __init__(self, max_keys: int = 200_000, max_results: int = 200_000) -> None:
        if max_keys < 1 or max_results < 1:
            raise ValueError("MemoryVelocityStore: max_keys and max_results must be >= 1")
        self._max_keys = max_keys
        self._max_results = max_results
        self._state: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._results: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._lock = asyncio.Lock()

    @staticmethod
    def defaults() -> dict[str, float]:
        """Velocity values to use when the store is unavailable."""
        return velocity_defaults()

    def _get(self, key: tuple[str, ...], factory: type) -> Any:
        obj = self._state.get(key)
        if obj is None:
            obj = factory()
            self._state[key] = obj
            if len(self._state) > self._max_keys:
                self._state.popitem(last=False)
        else:
            self._state.move_to_end(key)
        return obj

    def _peek(self, key: tuple[str, ...]) -> Any:
        return self._state.get(key)

    async def observe(self, txn: Mapping[str, Any]) -> dict[str, float]:
        """Velocity features of ``txn`` from earlier transactions, then record it."""
        txid, t, amount = _parse_txn(txn)
        async with self._lock:
            cached = self._results.get(txid)
            if cached is not None:
                return dict(cached)
            out = self._compute_and_record(txn, t, amount)
            self._results[txid] = out
            if len(self._results) > self._max_results:
                self._results.popitem(last=False)
            return dict(out)

    def _compute_and_record(self, txn: Mapping[str, Any], t: int, amount: float) -> dict[str, float]:
        out = velocity_defaults()
        ids = {entity: _key(txn.get(field)) for entity, field in ENTITIES.items()}
        for entity, ident in ids.items():
            if ident is None:
                continue
            ev: _Events | None = self._peek(("ev", entity, ident))
            if ev is None:
                continue
            for w_name, w in WINDOWS_MS.items():
                c, s = ev.window(t, w)
                out[f"{entity}_count_{w_name}"] = c
                out[f"{entity}_amount_{w_name}"] = s
            if entity == "card":
                prev = ev.last_before(t)
                if prev is not None:
                    out["card_seconds_since_prev"] = min((t - prev) / 1000.0, SECONDS_SINCE_CAP)
        for stem, entity, other in DISTINCTS:
            ident = ids[entity]
            if ident is None:
                continue
            ds: _Distinct | None = self._peek(("ds", stem, ident))
            if ds is not None:
                for w_name, w in WINDOWS_MS.items():
                    out[f"{stem}_{w_name}"] = ds.count(t, w)
        pair_ids = {}
        for name, fa, fb in PAIRS:
            a, b = _key(txn.get(fa)), _key(txn.get(fb))
            if a is None or b is None:
                continue
            pair_ids[name] = (a, b)
            pr: _Events | None = self._peek(("pr", name, a, b))
            if pr is not None:
                out[name] = pr.window(t, LONGEST_WINDOW_MS)[0]

        # record
        for entity, ident in ids.items():
            if ident is None:
                continue
            ev = self._get(("ev", entity, ident), _Events)
            ev.add(t, amount)
            ev.trim(t)
        for stem, entity, other in DISTINCTS:
            ident, cp = ids[entity], _key(txn.get(other))
            if ident is None or cp is None:
                continue
            ds = self._get(("ds", stem, ident), _Distinct)
            ds.add(cp, t)
            ds.trim(t)
        for name, (a, b) in pair_ids.items():
            pr = self._get(("pr", name, a, b), _Events)
            pr.add(t, 0.0)
            pr.trim(t)
        return out


# ---------------------------------------------------------------------------
# Redis store.
# ---------------------------------------------------------------------------
# KEYS[1] result; KEYS[2..6] entity events (ENTITIES order); then for each
# DISTINCTS entry its sorted set and prev hash; then one key per PAIRS entry.
# ARGV: txid, t, amount, ttl_ms, longest_ms, n_windows, windows..., (then as below;
# the last one is the result cache's TTL in ms)
#       entity mask (5 chars), per distinct: counterparty or "", pair mask.
_LUA = r"""
local cached = redis.call('GET', KEYS[1])
if cached then return cached end
local t = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local longest = tonumber(ARGV[5])
local nw = tonumber(ARGV[6])
local windows = {}
for i = 1, nw do windows[i] = tonumber(ARGV[6 + i]) end
local a = 7 + nw
local emask = ARGV[a]
local ne = string.len(emask)
local nd = tonumber(ARGV[a + 1])
local cps = {}
for i = 1, nd do cps[i] = ARGV[a + 1 + i] end
local pmask = ARGV[a + 2 + nd]
local np = string.len(pmask)
local txid = ARGV[1]
local cap = tonumber(ARGV[a + 3 + nd])

local function fmt(x) return string.format('%.17g', x) end
-- member: seq|sum_before|amount|txid; the zero-padded insertion sequence first so
-- that members with equal scores sort in insertion order.
local function split(m)
  local p1 = string.find(m, '|', 1, true)
  local p2 = string.find(m, '|', p1 + 1, true)
  local p3 = string.find(m, '|', p2 + 1, true)
  return tonumber(string.sub(m, p1 + 1, p2 - 1)), tonumber(string.sub(m, p2 + 1, p3 - 1)),
    tonumber(string.sub(m, 1, p1 - 1))
end
local out = {}
local n = 0
local function push(x) n = n + 1; out[n] = fmt(x) end
local seconds = cap

-- entity counts and sums. Members carry an insertion sequence and the running sum
-- before them, so a window's count and sum follow from its first member and the
-- last member before t: one "newest" lookup per entity (shared by every window, by
-- seconds-since-previous and by the write), one "oldest" lookup (which is the
-- window's first member whenever it lies inside the window, and tells whether a
-- trim is due), and a "first at or after t - W" lookup only when neither answers.
local tops, olds = {}, {}
for e = 1, ne do
  local k = KEYS[1 + e]
  local found = false
  if string.sub(emask, e, e) == '1' then
    local top = redis.call('ZREVRANGE', k, 0, 0, 'WITHSCORES')
    if #top > 0 then
      local tb, ta, tseq = split(top[1])
      local tscore = tonumber(top[2])
      tops[e] = {tb + ta, tseq, tscore}
      local lastm, lasts = top[1], tscore
      if tscore >= t then  -- ties or a late arrival: find the last member strictly before t
        local r = redis.call('ZREVRANGEBYSCORE', k, '(' .. t, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
        lastm, lasts = r[1], tonumber(r[2])
      end
      local om, os = top[1], tscore
      if tseq > 0 then  -- sequence 0 on top: it is the only member (sequences start at 0)
        local old = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
        om, os = old[1], tonumber(old[2])
      end
      olds[e] = os
      if lastm then
        found = true
        local lb, la, lseq = split(lastm)
        local lcum = lb + la
        for i = 1, nw do
          local lo = t - windows[i]
          if lasts < lo then
            push(0); push(0)
          else
            local fm = om
            if os < lo then
              fm = redis.call('ZRANGEBYSCORE', k, lo, '(' .. t, 'LIMIT', 0, 1)[1]
            end
            local fb, _, fseq = split(fm)
            push(lseq - fseq + 1); push(lcum - fb)
          end
        end
        if e == 1 then
          local gap = (t - lasts) / 1000
          if gap < cap then seconds = gap end
        end
      end
    end
  end
  if not found then
    for i = 1, nw do push(0); push(0) end
  end
end

-- distinct counterparties. A distinct set is only written together with its
-- entity's events (scored by the transaction's time, never above the entity's
-- newest event, and expiring no later), so an entity without events has no
-- counterparties, and counterparties seen at t exist only if the entity's newest
-- event is at or after t.
local dbase = 1 + ne
local dents = {}
for i = 1, nd do dents[i] = tonumber(ARGV[a + 3 + nd + i]) end
for d = 1, nd do
  local z = KEYS[dbase + 2 * d - 1]
  local h = KEYS[dbase + 2 * d]
  local top = tops[dents[d]]
  local counts = {}
  for i = 1, nw do counts[i] = 0 end
  if string.sub(emask, dents[d], dents[d]) == '1' and top then
    local prevs = {}
    if top[3] >= t then
      local same = redis.call('ZRANGEBYSCORE', z, t, t)
      if #same > 0 then prevs = redis.call('HMGET', h, unpack(same)) end
    end
    -- windows nest: once a wider one is empty, the narrower ones are too
    local empty = false
    for i = nw, 1, -1 do
      if not empty then
        local c = redis.call('ZCOUNT', z, t - windows[i], '(' .. t)
        for j = 1, #prevs do
          local p = prevs[j]
          if p and tonumber(p) >= t - windows[i] then c = c + 1 end
        end
        counts[i] = c
        empty = c == 0
      end
    end
  end
  for i = 1, nw do push(counts[i]) end
end

-- pairs
local pbase = dbase + 2 * nd
for p = 1, np do
  local c = 0
  if string.sub(pmask, p, p) == '1' then
    c = redis.call('ZCOUNT', KEYS[pbase + p], t - longest, '(' .. t)
  end
  push(c)
end
push(seconds)

-- record
for e = 1, ne do
  if string.sub(emask, e, e) == '1' then
    local k = KEYS[1 + e]
    local total, at, seq = 0, t, 0
    local top = tops[e]
    if top then
      total = top[1]
      seq = top[2] + 1
      if top[3] > at then at = top[3] end
    end
    redis.call('ZADD', k, at, string.format('%015d', seq) .. '|' .. fmt(total) .. '|' .. fmt(amount) .. '|' .. txid)
    -- trim only when the oldest member has left the longest window
    if olds[e] and olds[e] < t - longest then
      redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. (t - longest))
    end
    redis.call('PEXPIRE', k, ttl)
  end
end
for d = 1, nd do
  local cp = cps[d]
  if string.sub(emask, dents[d], dents[d]) == '1' and cp ~= '' then
    local z = KEYS[dbase + 2 * d - 1]
    local h = KEYS[dbase + 2 * d]
    local old = nil
    if tops[dents[d]] then old = redis.call('ZSCORE', z, cp) end
    if not old then
      redis.call('ZADD', z, t, cp)
      redis.call('HDEL', h, cp)
    elseif tonumber(old) < t then
      redis.call('HSET', h, cp, old)
      redis.call('ZADD', z, t, cp)
    end
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. (t - longest))
    if #gone > 0 then
      for j = 1, #gone, 500 do
        redis.call('HDEL', h, unpack(gone, j, math.min(j + 499, #gone)))
      end
      redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (t - longest))
    end
    redis.call('PEXPIRE', z, ttl)
    redis.call('PEXPIRE', h, ttl)
  end
end
for p = 1, np do
  if string.sub(pmask, p, p) == '1' then
    local k = KEYS[pbase + p]
    local top = redis.call('ZREVRANGE', k, 0, 0, 'WITHSCORES')
    local at = t
    if #top > 0 and tonumber(top[2]) > at then at = tonumber(top[2]) end
    redis.call('ZADD', k, at, txid)
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. (t - longest))
    redis.call('PEXPIRE', k, ttl)
  end
end
local res = table.concat(out, ',')
redis.call('SET', KEYS[1], res, 'PX', tonumber(ARGV[#ARGV]))
return res
"""

_ENTITY_INDEX = {entity: i + 1 for i, entity in enumerate(ENTITIES)}


class RedisVelocityStore:
    """Velocity store shared by all workers, in Redis, one round trip per score.

    ``client`` is a ``redis.asyncio.Redis``; ``key_prefix`` namespaces every key
    (one per environment / model generation); ``timeout`` (seconds) bounds each
    ``observe``: past it, or on any Redis error, ``VelocityUnavailable`` is raised
    and the caller scores with ``defaults()`` and reports itself degraded.
    ``result_ttl`` (seconds) is how long a retried ``transaction_id`` gets the same
    answer without being counted again.
    """

    def __init__(self, client: Any, key_prefix: str = "fraudstack:vel", timeout: float = 0.05,
                 result_ttl: float = 900.0) -> None:
        if not key_prefix:
            raise ValueError("RedisVelocityStore: key_prefix must not be empty")
        if not timeout > 0:
            raise ValueError("RedisVelocityStore: timeout must be > 0 seconds")
        if not 1 <= result_ttl <= LONGEST_WINDOW_MS / 1000:
            raise ValueError("RedisVelocityStore: result_ttl must be between 1 s and 7 days")
        # How long a retry gets the same answer. Kept short: at 10^4 scores/s every
        # cached result is ~1 KB of memory for its whole TTL.
        self._result_ttl_ms = str(int(result_ttl * 1000))
        self._client = client
        self._prefix = key_prefix
        self._timeout = timeout
        # register_script: EVALSHA, falling back to loading the script once on NOSCRIPT.
        self._script = client.register_script(_LUA)
        # app.resp's client bounds every call itself; redis-py's needs wait_for (a task per call).
        self._self_timed = isinstance(client, RespClient)
        # the script skips narrower windows once a wider one is empty: they must ascend
        if list(WINDOWS_MS.values()) != sorted(WINDOWS_MS.values()):
            raise ValueError("RedisVelocityStore: WINDOWS_MS must be in ascending order")
        self._windows = [str(w) for w in WINDOWS_MS.values()]

    @staticmethod
    def defaults() -> dict[str, float]:
        """Velocity values to use when the store is unavailable."""
        return velocity_defaults()

    def _keys_args(self, txn: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        txid, t, amount = _parse_txn(txn)
        p = self._prefix
        keys = [f"{p}:res:{txid}"]
        emask = []
        ids = {}
        for entity, field in ENTITIES.items():
            ident = _key(txn.get(field))
            ids[entity] = ident
            emask.append("0" if ident is None else "1")
            keys.append(f"{p}:ev:{entity}:{ident or ''}")
        cps = []
        dents = []
        for stem, entity, other in DISTINCTS:
            ident = ids[entity] or ""
            keys.append(f"{p}:ds:{stem}:{ident}")
            keys.append(f"{p}:dp:{stem}:{ident}")
            cps.append(_key(txn.get(other)) or "")
            dents.append(str(_ENTITY_INDEX[entity]))
        pmask = []
        for name, fa, fb in PAIRS:
            a, b = _key(txn.get(fa)), _key(txn.get(fb))
            on = a is not None and b is not None
            pmask.append("1" if on else "0")
            keys.append(f"{p}:pr:{name}:{a or ''}:{b or ''}")
        args = [txid, str(t), repr(amount), str(LONGEST_WINDOW_MS), str(LONGEST_WINDOW_MS),
                str(len(self._windows)), *self._windows, "".join(emask), str(len(cps)), *cps,
                "".join(pmask), repr(SECONDS_SINCE_CAP), *dents, self._result_ttl_ms]
        return keys, args

    async def observe(self, txn: Mapping[str, Any]) -> dict[str, float]:
        """Velocity features of ``txn`` from earlier transactions, then record it."""
        keys, args = self._keys_args(txn)
        try:
            if self._self_timed:
                raw = await self._script(keys, args, timeout=self._timeout)
            else:
                raw = await asyncio.wait_for(self._script(keys=keys, args=args), self._timeout)
        except asyncio.TimeoutError:
            raise VelocityUnavailable(f"redis velocity store: no answer within {self._timeout}s") from None
        except Exception as exc:  # redis.RedisError, OSError, ...: all mean "unavailable"
            raise VelocityUnavailable(f"redis velocity store: {type(exc).__name__}: {exc}") from exc
        return self._parse(raw)

    async def observe_many(self, txns: Sequence[Mapping[str, Any]], *, client: Any = None,
                           timeout: float | None = None) -> list[dict[str, float]]:
        """``observe`` for each of ``txns`` in order, all scripts in one pipelined round trip.

        Redis runs the scripts one after the other, so each transaction sees the
        earlier ones of the batch exactly as with sequential ``observe`` calls (and
        a transaction id repeated within the batch is counted once). Every
        transaction is validated before anything is sent: a bad one raises
        ``ValueError`` naming the problem and records nothing. ``client`` (default:
        the store's) lets a caller use a connection with a longer socket timeout
        for big batches; ``timeout`` (seconds) bounds the whole batch, by default
        the single timeout per 10 transactions, at least the single timeout.
        Any Redis failure or timeout raises ``VelocityUnavailable``; scripts that
        ran before it stay recorded, so a retry of the batch is safe (idempotency).
        """
        calls = [self._keys_args(txn) for txn in txns]
        if not calls:
            return []
        if timeout is None:
            timeout = max(self._timeout, self._timeout * len(calls) / 10)
        try:
            if isinstance(client or self._client, RespClient):
                script = self._script if client is None else client.register_script(_LUA)
                replies = await script.many(calls, timeout=timeout)
            else:
                pipe = (client or self._client).pipeline(transaction=False)
                for keys, args in calls:
                    await self._script(keys=keys, args=args, client=pipe)
                replies = await asyncio.wait_for(pipe.execute(), timeout)
        except asyncio.TimeoutError:
            raise VelocityUnavailable(
                f"redis velocity store: batch of {len(calls)} not answered within {timeout}s") from None
        except Exception as exc:  # redis.RedisError, OSError, ...: all mean "unavailable"
            raise VelocityUnavailable(f"redis velocity store: {type(exc).__name__}: {exc}") from exc
        return [self._parse(raw) for raw in replies]

    @staticmethod
    def _parse(raw: Any) -> dict[str, float]:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        values = text.split(",")
        if len(values) != len(VELOCITY_FEATURES):
            raise VelocityUnavailable(
                f"redis velocity store: expected {len(VELOCITY_FEATURES)} values, got {len(values)}"
                " (a different feature version wrote this key prefix?)")
        return {name: float(v) for name, v in zip(VELOCITY_FEATURES, values)}
