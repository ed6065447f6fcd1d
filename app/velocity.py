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

Redis layout (version 2, every key is ``{prefix}:v2:...``; one round trip per
``observe``: one Lua script, EVALSHA; a batch, ``observe_matrix``: one pipelined round
trip of a few script calls, below):

* ``{prefix}:v2:ev:{entity}:{id}``: sorted set of the entity's transactions, scored
  by minus epoch ms (the newest first), member packed binary ``(2^53 - seq, time,
  sum_before, sum_after)``. The sequence is contiguous, so a window's count is
  seq_last - seq_first + 1 and its sum sum_after(last) - sum_before(first), from the
  newest event (rank 0), the first event of the widest window (from the oldest end)
  and, for a narrower window, the newest event before it (from the newest end),
  each looked up only when an earlier lookup does not answer it.
  Below the events (scores shifted by multiples of 2^50), the same key holds the
  entity's counterparties (merchants, devices, cards) scored by last sighting, and
  for each one seen more than once a marker scored by the sighting before (so that
  equal timestamps never see each other); exact distinct counts with ZCOUNT;
* ``{prefix}:v2:pr:{name}:{len(a)}:{a}:{b}``: sorted set of a (customer, device /
  ip country) pair's transactions;
* ``{prefix}:v2:res:{transaction_id}``: the features returned (45 packed doubles),
  for idempotency, kept ``result_ttl`` seconds (15 min by default: retries come
  within seconds; a retry after that is recorded again).

TTL: a key's expiry is set to the longest window plus an hour (7 d 1 h) when it is
created and refreshed only when the hour of its newest event changes, so everything
lives at least the longest window after its last write and expires after the longest
window (plus at most an hour) of inactivity. Members older than the longest window
(before the newest event, or for counterparties before their newest sighting) are
trimmed on a key's first write of a (UTC) day, so a key holds at most the longest
window plus a day; a late arrival sees exactly what trimming on every write would
have left (the memory store's view). About 30 Redis commands per script call on a
realistic stream, down from 42, and about half the Redis time (82 against 178 us
per call, 2.7x fewer instructions; the ``bench.velocity_script`` micro-benchmark
measures it, docs/BENCHMARKS.md). The keys of one transaction span many hash slots,
so the store needs a non-clustered Redis (ElastiCache with cluster mode disabled,
which the infrastructure provisions).

Batches (``RedisVelocityStore.observe_matrix``, the service's ``/v1/score/batch``): the
transactions go as calls of a second script, generated from the same Lua text, that
runs the per-transaction logic for each of up to ``chunk_size`` transactions (16 by
default, ``DEFAULT_CHUNK``: a call blocks Redis ~1.2 ms) in order, so each sees the
earlier ones of the batch exactly as sequential ``observe`` calls would; each call
written as soon as it is built (Redis starts on the first while the client builds the
rest); transactions at the same time share their bounds; one packed reply per call, the
batch parsed by one ``numpy.frombuffer``. Redis's own cost per transaction barely
changes (72.5 against 76.4 us, 78 against 80 us of process CPU: the script's ~30
commands and its Lua per transaction, not the call, are what it costs); the client's
work shrinks and overlaps Redis's (a 1,000-transaction batch 83.8 against 98.4 ms), and
``observe`` keeps its script and cost (``python -m bench.velocity_script --ref REV
--redis-core 1``, 2026-11-22 08:20 UTC, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

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

    __slots__ = ("last", "prev", "newest")

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.prev: dict[str, int] = {}
        self.newest: int | None = None  # the newest sighting ever added

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
        if self.newest is None or t > self.newest:
            self.newest = t

    def trim(self, t: int) -> None:
        # From the newest sighting, not from t: a late arrival's sighting older than
        # the longest window before it is dropped at once, as the events keep nothing
        # older either (a late event is stored at the newest time).
        cut = max(t, self.newest if self.newest is not None else t) - LONGEST_WINDOW_MS
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
# Layout version, part of every key: keys of another layout are never read (they
# expire on their own).
_LAYOUT = "v2"
# Scores are negated times: -t for an event in slot 0 of its key, -(s * _SLOT + t) in
# slot s. Every datetime (years 1 to 9999) lies within +-_T_MAX ms, so slots never
# overlap and every score is an integer below 2^53, exact in a double.
_T_MAX = 2**48
_SLOT = 2**50
# A key's TTL is refreshed only when the hour of its newest event changes, hence the
# longest window plus that hour: data lives at least the longest window after the
# key's last write (event time tracks wall time: authorisations arrive in real time).
_GRAIN_MS = 3_600_000
_TTL_MS = LONGEST_WINDOW_MS + _GRAIN_MS
# Members older than the longest window are trimmed on a key's first write of a (UTC)
# day, so a key holds at most the longest window plus a day.
_TRIM_MS = 86_400_000
_N_OUT = len(VELOCITY_FEATURES)
_OUT_FORMAT = "<" + "d" * _N_OUT
# An entity's key holds its events (slot 0) and, below them, its counterparty
# sightings: the j-th DISTINCTS entry of the entity (j = 0, 1) has its sightings in
# slot 4 - j and their markers (previous sightings) in slot 2 - j, so that the
# counted sightings come first in the set and the rarely read markers next to the
# events.
_DIST_J = [[e for _, e, _ in DISTINCTS[:i]].count(entity) for i, (_, entity, _) in enumerate(DISTINCTS)]
if max(_DIST_J, default=0) > 1:
    raise ValueError("velocity: at most two DISTINCTS entries per entity (key slots)")
_DIST_SLOT = [4 - j for j in _DIST_J]
_DIST_MARK = [2 - j for j in _DIST_J]
_ARG_SLOTS = [0, *sorted(set(_DIST_SLOT))]  # slots whose bounds the client sends
# The script's argument layout (below _LUA): keys per transaction, arguments per
# transaction (the first counterparty member at _R_CP), header arguments, bounds per
# distinct time.
_N_KEYS = 1 + len(ENTITIES) + len(PAIRS)
_R_CP = 4
_N_REC = _R_CP - 1 + 2 * len(DISTINCTS)
_N_HEAD = 2
_N_BOUNDS = (2 + len(WINDOWS_MS)) * len(_ARG_SLOTS)
# Transactions per script call of a batch (RedisVelocityStore's chunk_size). Redis's
# cost per batch transaction does not depend on it (73-77 us of Redis time from 1 to
# 1,000 per call: the script's ~30 commands and its Lua, not the call, are the cost),
# but Redis serves no one else while a call runs, so it is what a single score arriving
# meanwhile may wait: 1.2 ms for 16, 2.4 ms for 32, 4.6 ms for 64, 9.7 ms for 128. 16 is
# about what one script per transaction already cost it (Redis reads a pipeline 16 KB,
# ~16 such scripts, at a time) and well inside the single-score p99 target (5 ms)
# (python -m bench.velocity_script --repeat 1 --redis-core 1 --chunk N, 2026-11-22 08:19 UTC).
DEFAULT_CHUNK = 16


def _lua(batch: bool) -> str:
    """The script, with the feature definition's constants written in: one transaction
    per call (``observe``), or ``batch``: N per call."""
    nw, ne = len(WINDOWS_MS), len(ENTITIES)
    block = 2 + nw  # bounds per slot: the scores of t, t - 1 and t - W for each window
    blocks = []
    for e, entity in enumerate(ENTITIES):
        base, key = 2 * nw * e, f"K[ko + {e + 2}]"
        mine = [d for d, (_, owner, _) in enumerate(DISTINCTS) if owner == entity]
        if not mine:
            blocks.append("\n".join([
                f"if byte(mask, {e + 1}) == 49 then",
                f"  local k = {key}",
                f"  local seq, cum, at, tt = events(k, call('ZRANGE', k, '0', '0')[1], {base})",
                "  call('ZADD', k, at == t and A[bo + 1] or fmt('%d', -at), pack('>I8i8dd', MAXSEQ - seq, at, cum, cum + amount))",
                "  upkeep(k, at, tt)",
                "end"]))
            continue
        # per distinct: slot, marker slot, its first bound (A[bo + ..]), its counterparty (A[ao + ..]), out base
        dist = [(_DIST_SLOT[d], _DIST_MARK[d], 1 + _ARG_SLOTS.index(_DIST_SLOT[d]) * block, _R_CP + 2 * d,
                 2 * nw * ne + nw * d) for d in mine]
        cps = [f"A[ao + {c}]" for _, _, _, c, _ in dist]
        ms = [f"m{j + 1}" for j in range(len(dist))]
        member = "'>I8i8dd" + "i8" * len(dist) + "'"
        lines = [f"if byte(mask, {e + 1}) == 49 then",
                 f"  local k = {key}",
                 "  -- the newest event: events score above the counterparties",
                 f"  local top = call('ZRANGEBYSCORE', k, '{-_T_MAX}', '+inf', 'LIMIT', '0', '1')[1]",
                 f"  local seq, cum, at, tt = events(k, top, {base})",
                 "  -- the newest sighting of each counterparty kind (NONE: none)",
                 f"  local {', '.join(ms)} = {', '.join(['NONE'] * len(ms))}",
                 "  local o1, o2",
                 "  if tt then",
                 f"    {', '.join(ms)} = unpack_s('>{'i8' * len(dist)}', top, 33)",
                 *[f"    distinct(k, {ms[j]}, {s_}, {m_}, bo + {a_}, {ob})" for j, (s_, m_, a_, _, ob) in enumerate(dist)],
                 "    -- previous sightings of this transaction's counterparties"]
        if len(dist) == 1:
            lines.append(f"    if {cps[0]} ~= '' then o1 = call('ZSCORE', k, {cps[0]}) end")
        else:
            lines += [f"    if {cps[0]} ~= '' and {cps[1]} ~= '' then",
                      f"      local r = call('ZMSCORE', k, {cps[0]}, {cps[1]})",
                      "      o1, o2 = r[1], r[2]",
                      f"    elseif {cps[0]} ~= '' then",
                      f"      o1 = call('ZSCORE', k, {cps[0]})",
                      f"    elseif {cps[1]} ~= '' then",
                      f"      o2 = call('ZSCORE', k, {cps[1]})",
                      "    end"]
        lines.append("  end")
        lines += [f"  if {cps[j]} ~= '' and t > {ms[j]} then {ms[j]} = t end" for j in range(len(dist))]
        lines += [f"  local z = {{'ZADD', k, at == t and A[bo + 1] or fmt('%d', -at), pack({member}, MAXSEQ - seq, at, cum, cum + amount, {', '.join(ms)})}}",
                  "  local n = 4"]
        for j, (s_, m_, a_, c_, _) in enumerate(dist):
            lines.append(f"  if {cps[j]} ~= '' then n = sighting(z, n, o{j + 1}, {s_}, {m_}, bo + {a_}, {cps[j]}, A[ao + {c_ + 1}]) end")
        lines += ["  call(unpack(z, 1, n))",
                  "  if upkeep(k, at, tt) then  -- and the sightings (with their markers) as old"]
        for j, (s_, m_, _, _, _) in enumerate(dist):
            lines += [f"    if {ms[j]} > NONE then",
                      f"      call('ZREMRANGEBYSCORE', k, '(' .. fmt('%d', LONGEST - {ms[j]} - {s_ * _SLOT}), '{_T_MAX - s_ * _SLOT}')",
                      f"      call('ZREMRANGEBYSCORE', k, '(' .. fmt('%d', LONGEST - {ms[j]} - {m_ * _SLOT}), '{_T_MAX - m_ * _SLOT}')",
                      "    end"]
        lines += ["  end", "end"]
        blocks.append("\n".join(lines))
    consts = {
        "ENTITIES": "\n\n".join(blocks),
        "NE": ne, "NW": nw, "NP": len(PAIRS),
        "W": "{" + ", ".join(str(w) for w in WINDOWS_MS.values()) + "}",
        "LONGEST": LONGEST_WINDOW_MS, "SLOT": _SLOT, "TMAX": _T_MAX, "GRAIN": _GRAIN_MS, "TTL": _TTL_MS,
        "TRIM": _TRIM_MS, "CAP": repr(SECONDS_SINCE_CAP), "NOUT": _N_OUT, "OUTFMT": _OUT_FORMAT,
        "OUT": "{" + ", ".join(["0"] * (_N_OUT - 1) + [repr(SECONDS_SINCE_CAP)]) + "}",
        "PK": 1 + ne, "POUT": 2 * nw * ne + nw * len(DISTINCTS), "NK": _N_KEYS, "NR": _N_REC, "NH": _N_HEAD,
    }
    if batch:
        consts["HEAD"] = "local TTL, N = A[1], tonumber(A[2])"
        consts["BEGIN"] = "\n".join([
            "local replies = {}",
            "for i = 1, N do",
            f"ko, ao = (i - 1) * {_N_KEYS}, {_N_HEAD} + (i - 1) * {_N_REC}",
            "local cached = call('GET', K[ko + 1])",
            "if cached then",
            "replies[i] = cached",
            "else",
            "bo = tonumber(A[ao + 1])"])
        consts["END"] = "replies[i] = res\nend\nend\nreturn concat(replies)"
    else:
        consts["HEAD"] = f"local TTL = A[{_N_BOUNDS + _N_REC}]"
        consts["BEGIN"] = "local cached = call('GET', K[ko + 1])\nif cached then return cached end"
        consts["END"] = "return res"
    text = _LUA
    for name, value in consts.items():
        text = text.replace(f"@{name}@", str(value))
    assert "@" not in text
    if not batch:
        # the one transaction's keys and arguments at fixed places: its bounds first,
        # then its arguments but the bounds' offset, then the TTL
        text = text.replace("K[ko + ", "K[").replace("bo + ", "")
        text = re.sub(r"A\[ao \+ (\d+)\]", lambda m: f"A[{int(m[1]) - 1 + _N_BOUNDS}]", text)
        assert "ao +" not in text and "ko +" not in text
    return text


# Two scripts from this text: _SCRIPT observes one transaction per call (``observe``),
# _BATCH_SCRIPT N in order, each exactly as a call of its own would (a batch's chunk).
# KEYS: per transaction (_N_KEYS each, in order): result, one per ENTITIES entry, one
# per PAIRS entry.
# ARGV of _BATCH_SCRIPT: result TTL (ms), N; per transaction (_N_REC each, in order):
# where its bounds start (its bounds are A[bo + 1 ..]), amount, presence mask (one
# '1'/'0' per entity then per pair), per DISTINCTS entry the counterparty's member and
# its marker's ('' when absent); then the bounds of each distinct time of the call
# (_N_BOUNDS each): per slot s of _ARG_SLOTS the scores of t, t - 1 and t - W for each
# window in that slot. Transactions at the same time share their bounds.
# ARGV of _SCRIPT: the bounds, the transaction's arguments but the first, the TTL (the
# offsets ko, ao and bo are written in as constants: a call costs what it did before
# the batch form existed, python -m bench.velocity_script).
_LUA = r"""
local call, A, K = redis.call, ARGV, KEYS
local byte, char, sub, fmt, concat = string.byte, string.char, string.sub, string.format, table.concat
local pack, unpack_s = struct.pack, struct.unpack
local LONGEST, SLOT, TMAX, GRAIN, TRIM, MAXSEQ = @LONGEST@, @SLOT@, @TMAX@, @GRAIN@, @TRIM@, 9007199254740992
local NONE = -TMAX - LONGEST  -- "no sighting", older than any time
local W = @W@
-- Scores are negated times, so a set's newest member comes first, where small
-- (listpack-encoded) sets insert and scan cheaply. Redis formats a number argument
-- with "%.17g", slowly: arguments are strings, the usual bounds from the client, the
-- others from "%d" (exact: scores are integers below 2^53). Event members: MAXSEQ -
-- sequence (big-endian: at equal scores the newest first), time, running sum before
-- and after the event, then for an entity with counterparties the time of the newest
-- sighting of each (struct.pack: no number formatting or parsing).
@HEAD@
-- The transaction being observed: its time, amount, presence mask and features, and
-- the offsets of its keys in K (ko), of its arguments (ao) and bounds (bo) in A.
local t, amount, mask, out, ko, ao, bo

-- An entity's windows (out[base + 1 ..]) from its key k, whose newest event is top.
-- Returns what recording the transaction needs: the next sequence, the running sum,
-- the time to store the event at and the newest event's time (nil: no event).
local function events(k, top, base)
  if not top then return 0, 0, t, nil end
  local tseq, tt, tb, ta = unpack_s('>I8i8dd', top)
  tseq = MAXSEQ - tseq
  local at = t
  if tt > t then at = tt end
  -- A late arrival sees nothing older than the longest window before the newest
  -- event: what trimming on every write would have left.
  local fl, flm = NONE, '+inf'
  if t < tt then fl = tt - LONGEST; flm = fmt('%d', -fl) end
  -- newest event strictly before t
  local lseq, lt, la = tseq, tt, ta
  if tt >= t then
    local m = call('ZRANGEBYSCORE', k, A[bo + 2], flm, 'LIMIT', '0', '1')[1]
    if m then
      local lb
      lseq, lt, lb, la = unpack_s('>I8i8dd', m)
      lseq = MAXSEQ - lseq
    else
      lt = nil
    end
  end
  if lt then
    -- Widest window first. A window's first event: the only event; the wider
    -- window's first when late enough; for the widest, the oldest at or after its
    -- start (searched from the oldest end); else the one after the newest event
    -- before the window (searched from the newest end).
    local fseq, ft, fb = -1, NONE, 0
    if tseq == 0 then fseq, ft, fb = 0, tt, tb end
    for i = @NW@, 1, -1 do
      local lo, nlo = t - W[i], A[bo + 2 + i]
      if lo < fl then lo, nlo = fl, flm end
      if lt < lo then break end
      if ft < lo then
        if i == @NW@ then
          fseq, ft, fb = unpack_s('>I8i8d', call('ZREVRANGEBYSCORE', k, nlo, '-inf', 'LIMIT', '0', '1')[1])
          fseq = MAXSEQ - fseq
        else
          local ps, pt, pb, pa = unpack_s('>I8i8dd', call('ZRANGEBYSCORE', k, '(' .. nlo, '+inf', 'LIMIT', '0', '1')[1])
          fseq, ft, fb = MAXSEQ - ps + 1, lo, pa  -- (ft: at or after lo)
        end
      end
      out[base + 2 * i - 1] = lseq - fseq + 1
      out[base + 2 * i] = la - fb
    end
    if base == 0 then  -- the card: seconds since its previous transaction
      local gap = (t - lt) / 1000
      if gap < @CAP@ then out[@NOUT@] = gap end
    end
  end
  return tseq + 1, ta, at, tt
end

-- One DISTINCTS entry of an entity (key k) whose newest sighting is at m (NONE: no
-- sighting): its counts (out[base + 1 ..]) from slot s (its markers: slot ms),
-- bounds A[a ..].
local function distinct(k, m, s, ms, a, base)
  local so = s * SLOT
  -- nothing older than the longest window before the newest sighting is visible:
  -- what trimming on every write would have left
  local dl = m - LONGEST
  local prevs = nil
  if m >= t then  -- counterparties seen at t: their previous sightings count
    local same = call('ZRANGEBYSCORE', k, A[a], A[a])
    if #same > 0 then
      local mk = char(ms + 1)
      for q = 1, #same do same[q] = mk .. sub(same[q], 2) end
      prevs = call('ZMSCORE', k, unpack(same))
    end
  end
  for i = @NW@, 1, -1 do
    local lo, nlo = t - W[i], A[a + 1 + i]
    if m < lo then break end  -- no sighting since lo
    if lo < dl then lo, nlo = dl, fmt('%d', -so - dl) end
    local c = call('ZCOUNT', k, A[a + 1], nlo)
    if prevs then
      local lm = -ms * SLOT - lo
      for q = 1, #prevs do
        local p = prevs[q]
        if p and tonumber(p) <= lm then c = c + 1 end
      end
    end
    out[base + i] = c
    if c == 0 then break end
  end
end

-- A counterparty sighting at t (slot s, markers ms, bounds A[a ..]) whose previous
-- score is old: its members added to z from index n; returns the new n.
local function sighting(z, n, old, s, ms, a, cpm, mkm)
  if old then old = -s * SLOT - tonumber(old) end
  if not old or old < t - LONGEST then  -- (a previous sighting that old never counts)
    z[n + 1], z[n + 2] = A[a], cpm
    return n + 2
  elseif old < t then
    z[n + 1], z[n + 2], z[n + 3], z[n + 4] = A[a], cpm, fmt('%d', -ms * SLOT - old), mkm
    return n + 4
  end
  return n
end

-- the maintenance of key k after recording at `at` (its newest event was at tt)
local function upkeep(k, at, tt)
  if not tt or at - at % GRAIN ~= tt - tt % GRAIN then call('PEXPIRE', k, '@TTL@') end
  if tt and at - at % TRIM ~= tt - tt % TRIM then
    call('ZREMRANGEBYSCORE', k, '(' .. fmt('%d', LONGEST - at), '+inf')
    return true
  end
  return false
end

@BEGIN@
t = -tonumber(A[bo + 1])
amount = tonumber(A[ao + 2])
mask = A[ao + 3]
out = @OUT@

@ENTITIES@

for p = 1, @NP@ do
  if byte(mask, @NE@ + p) == 49 then
    local k = K[ko + @PK@ + p]
    local top = call('ZRANGE', k, '0', '0')[1]
    local seq, at, tt = 0, t, nil
    if top then
      local tseq
      tseq, tt = unpack_s('>I8i8', top)
      tseq = MAXSEQ - tseq
      seq = tseq + 1
      if tt > t then at = tt end
      local lo, nlo = t - LONGEST, A[bo + 2 + @NW@]
      if lo < tt - LONGEST then lo, nlo = tt - LONGEST, fmt('%d', LONGEST - tt) end
      if tt >= lo then
        if tseq == 0 and tt < t then
          out[@POUT@ + p] = 1  -- the only one, inside the window
        else
          out[@POUT@ + p] = call('ZCOUNT', k, A[bo + 2], nlo)
        end
      end
    end
    call('ZADD', k, at == t and A[bo + 1] or fmt('%d', -at), pack('>I8i8', MAXSEQ - seq, at))
    upkeep(k, at, tt)
  end
end

local res = pack('@OUTFMT@', unpack(out))
call('SET', K[ko + 1], res, 'PX', TTL)
@END@
"""


class RedisVelocityStore:
    """Velocity store shared by all workers, in Redis, one round trip per score (or per batch).

    ``client`` is a ``redis.asyncio.Redis`` returning bytes (not
    ``decode_responses=True``: the script answers in binary) or an
    ``app.resp.RespClient``; ``key_prefix`` namespaces every key (one per environment
    / model generation); ``timeout`` (seconds) bounds each ``observe``: past it, or
    on any Redis error, ``VelocityUnavailable`` is raised and the caller scores with
    ``defaults()`` and reports itself degraded. ``result_ttl`` (seconds) is how long
    a retried ``transaction_id`` gets the same answer without being counted again.
    ``chunk_size`` is the most transactions per script call of a batch.
    """

    def __init__(self, client: Any, key_prefix: str = "fraudstack:vel", timeout: float = 0.05,
                 result_ttl: float = 900.0, chunk_size: int = DEFAULT_CHUNK) -> None:
        if not key_prefix:
            raise ValueError("RedisVelocityStore: key_prefix must not be empty")
        if not timeout > 0:
            raise ValueError("RedisVelocityStore: timeout must be > 0 seconds")
        if not 1 <= result_ttl <= LONGEST_WINDOW_MS / 1000:
            raise ValueError("RedisVelocityStore: result_ttl must be between 1 s and 7 days")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"RedisVelocityStore: chunk_size must be an integer >= 1 (got {chunk_size!r})")
        pool = getattr(client, "connection_pool", None)
        if pool is not None and getattr(pool, "connection_kwargs", {}).get("decode_responses"):
            raise ValueError("RedisVelocityStore: the client must return bytes (decode_responses=False)")
        # the script stops at the first empty window, widest first: they must nest
        if list(WINDOWS_MS.values()) != sorted(WINDOWS_MS.values()):
            raise ValueError("RedisVelocityStore: WINDOWS_MS must be in ascending order")
        # How long a retry gets the same answer. Kept short: at 10^4 scores/s every
        # cached result is ~0.5 KB of memory for its whole TTL.
        self._result_ttl_ms = str(int(result_ttl * 1000))
        self._client = client
        self._prefix = key_prefix
        self._timeout = timeout
        # register_script: EVALSHA, falling back to loading the script once on NOSCRIPT.
        self._script = client.register_script(_SCRIPT)
        self._batch_script = client.register_script(_BATCH_SCRIPT)
        # app.resp's client bounds every call itself; redis-py's needs wait_for (a task per call).
        self._self_timed = isinstance(client, RespClient)
        # Everything about a call's keys and arguments that does not depend on the
        # transaction, computed once.
        base = f"{key_prefix}:{_LAYOUT}"
        self._res_prefix = f"{base}:res:"
        # the fields a call reads, each once
        self._fields = fields = sorted({*ENTITIES.values(), *(o for _, _, o in DISTINCTS),
                                        *(f for _, fa, fb in PAIRS for f in (fa, fb))})
        self._entity_keys = [(f"{base}:ev:{entity}:", fields.index(field)) for entity, field in ENTITIES.items()]
        self._distincts = [(fields.index(ENTITIES[entity]), fields.index(other), chr(slot + 1), chr(mark + 1))
                           for (_, entity, other), slot, mark in zip(DISTINCTS, _DIST_SLOT, _DIST_MARK)]
        self._pairs = [(f"{base}:pr:{name}:", fields.index(fa), fields.index(fb)) for name, fa, fb in PAIRS]
        # the script's bounds: -t plus each of these
        self._deltas = [d - slot * _SLOT for slot in _ARG_SLOTS for d in (0, 1, *WINDOWS_MS.values())]
        self._chunk = chunk_size

    @staticmethod
    def defaults() -> dict[str, float]:
        """Velocity values to use when the store is unavailable."""
        return velocity_defaults()

    async def preload(self, timeout: float = 1.0) -> None:
        """Load both scripts into Redis (and open the connection) before the first score.

        Otherwise the first scores of a worker, arriving together, each get ``NOSCRIPT``
        and load the script (Redis compiles it) within their own tight timeout, while the
        worker runs its cold code paths: a few of them used to time out and score
        degraded at start-up. Raises ``VelocityUnavailable`` when Redis does not answer;
        scoring then loads the scripts on first use, as before.
        """
        try:
            for source in (_SCRIPT, _BATCH_SCRIPT):
                if isinstance(self._client, RespClient):
                    await self._client.execute("SCRIPT", "LOAD", source, timeout=timeout)
                else:
                    await asyncio.wait_for(self._client.script_load(source), timeout)
        except asyncio.TimeoutError:
            raise VelocityUnavailable(f"redis velocity store: scripts not loaded within {timeout}s") from None
        except Exception as exc:  # redis.RedisError, OSError, ...
            raise VelocityUnavailable(f"redis velocity store: {type(exc).__name__}: {exc}") from exc

    def _transaction(self, txn: Mapping[str, Any]) -> tuple[int, list[str], list[str]]:
        """A transaction's time, keys and arguments (all but the offset of its bounds)."""
        txid, t, amount = _parse_txn(txn)
        if not -_T_MAX < t < _T_MAX:
            raise ValueError(f"velocity: timestamp {t} ms is out of range")
        get = txn.get
        ids = []  # per self._fields entry its key (None: absent)
        for field in self._fields:
            v = get(field)
            ids.append(v if v.__class__ is str and v else _key(v))
        keys = [self._res_prefix + txid]
        mask = ""
        for prefix, i in self._entity_keys:
            ident = ids[i]
            if ident is None:
                mask += "0"
                keys.append(prefix)  # never touched: the mask says absent
            else:
                mask += "1"
                keys.append(prefix + ident)
        for prefix, i, j in self._pairs:
            a, b = ids[i], ids[j]
            if a is None or b is None:
                mask += "0"
                keys.append(prefix)
            else:
                mask += "1"
                # the length of the first part keeps "a:b" + "c" apart from "a" + "b:c"
                keys.append(f"{prefix}{len(a)}:{a}:{b}")
        args = [repr(amount), mask]
        for i, j, slot, marker in self._distincts:
            cp = ids[j]
            if cp is None or ids[i] is None:
                args += ("", "")
            else:
                args += (slot + cp, marker + cp)
        return t, keys, args

    def _calls(self, prepared: list[tuple[int, list[str], list[str]]]) -> Iterator[tuple[list[str], list[str]]]:
        """The batch script's calls (keys, arguments) observing the ``_transaction``s
        ``prepared`` in order, at most ``chunk_size`` transactions each, built as they
        are sent (``app.resp`` writes each as soon as it is built, so Redis starts on
        the first while the rest are built)."""
        deltas, chunk, ttl = self._deltas, self._chunk, self._result_ttl_ms
        for start in range(0, len(prepared), chunk):
            part = prepared[start:start + chunk]
            keys: list[str] = []
            args = [ttl, str(len(part))]
            bounds: list[str] = []
            # Transactions at the same time (common in a batch) share their bounds.
            offsets: dict[int, str] = {}
            first = _N_HEAD + len(part) * _N_REC  # the bounds follow the transactions' arguments
            for t, k, rest in part:
                keys += k
                bo = offsets.get(t)
                if bo is None:
                    bo = offsets[t] = str(first + len(bounds))
                    bounds += [str(d - t) for d in deltas]
                args.append(bo)
                args += rest
            args += bounds
            yield keys, args

    async def observe(self, txn: Mapping[str, Any]) -> dict[str, float]:
        """Velocity features of ``txn`` from earlier transactions, then record it."""
        t, keys, rest = self._transaction(txn)
        args = [str(d - t) for d in self._deltas]
        args += rest
        args.append(self._result_ttl_ms)
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
        """``observe`` for each of ``txns`` in order, as dicts (``observe_matrix``)."""
        matrix = await self.observe_matrix(txns, client=client, timeout=timeout)
        return [dict(zip(VELOCITY_FEATURES, row)) for row in matrix.tolist()]

    async def observe_matrix(self, txns: Sequence[Mapping[str, Any]], *, client: Any = None,
                             timeout: float | None = None) -> np.ndarray:
        """``observe`` for each of ``txns`` in order, in one pipelined round trip: the
        features as a float64 matrix, one row per transaction (``VELOCITY_FEATURES``
        order).

        The batch goes as a few script calls of at most ``chunk_size`` transactions,
        sent in one write. Redis runs them one after the other and each runs its
        transactions in order, so each transaction sees the earlier ones of the batch
        exactly as with sequential ``observe`` calls (and a transaction id repeated
        within the batch is counted once). Every transaction is validated before
        anything is sent: a bad one raises ``ValueError`` naming the problem and
        records nothing. ``client`` (default: the store's) lets a caller use a
        connection with a longer socket timeout for big batches; ``timeout`` (seconds)
        bounds the whole batch, by default the single timeout per 10 transactions, at
        least the single timeout. Any Redis failure or timeout raises
        ``VelocityUnavailable``; what ran before it stays recorded, so a retry of the
        batch is safe (idempotency).
        """
        # every transaction checked (ValueError) before anything is built or sent
        prepared = [self._transaction(txn) for txn in txns]
        n = len(prepared)
        if not n:
            return np.zeros((0, _N_OUT))
        sizes = [min(self._chunk, n - start) for start in range(0, n, self._chunk)]
        calls = self._calls(prepared)
        if timeout is None:
            timeout = max(self._timeout, self._timeout * n / 10)
        try:
            if isinstance(client or self._client, RespClient):
                script = self._batch_script if client is None else client.register_script(_BATCH_SCRIPT)
                replies = await script.many(calls, timeout=timeout)
            else:
                pipe = (client or self._client).pipeline(transaction=False)
                for keys, args in calls:
                    await self._batch_script(keys=keys, args=args, client=pipe)
                replies = await asyncio.wait_for(pipe.execute(), timeout)
        except asyncio.TimeoutError:
            raise VelocityUnavailable(f"redis velocity store: batch of {n} not answered within {timeout}s") from None
        except Exception as exc:  # redis.RedisError, OSError, ...: all mean "unavailable"
            raise VelocityUnavailable(f"redis velocity store: {type(exc).__name__}: {exc}") from exc
        if len(replies) != len(sizes):
            raise VelocityUnavailable(f"redis velocity store: {len(replies)} replies to {len(sizes)} script calls")
        for m, raw in zip(sizes, replies):
            _check_size(raw, m)
        # one buffer for the whole batch, parsed in one call (bytearray: a writable array)
        return np.frombuffer(bytearray().join(replies), dtype=_OUT_DTYPE).reshape(n, _N_OUT)

    @staticmethod
    def _parse(raw: Any) -> dict[str, float]:
        _check_size(raw, 1)
        return dict(zip(VELOCITY_FEATURES, _unpack_out(raw)))


def _check_size(raw: Any, n: int) -> None:
    """A script reply must be ``n`` records of the features."""
    if not isinstance(raw, bytes) or len(raw) != n * _OUT_SIZE:
        raise VelocityUnavailable(
            f"redis velocity store: expected {n * _OUT_SIZE} bytes ({n} x {_OUT_SIZE}), got "
            f"{len(raw) if isinstance(raw, (bytes, str)) else type(raw).__name__}"
            " (a different feature version wrote this key prefix?)")


_SCRIPT = _lua(batch=False)
_BATCH_SCRIPT = _lua(batch=True)
_OUT_SIZE = struct.calcsize(_OUT_FORMAT)
_unpack_out = struct.Struct(_OUT_FORMAT).unpack
_OUT_DTYPE = np.dtype("<f8")
