-- Fixed-rate pacing for wrk scripts (Debian's wrk has no fixed-rate mode).
-- require("bench.pacing") from a script run with the repository root as working directory.
--
-- One schedule per wrk thread: request k is due at t0 + k/rate. Each time a connection
-- is free, wrk calls delay(); it takes the next slot of the schedule and waits until it
-- is due (monotonic clock through LuaJIT's FFI; wrk's timer resolution is 1 ms). When
-- every connection is busy and a slot passes unused, the schedule restarts from now
-- instead of bursting to catch up: the achieved rate then falls below the offered one,
-- which the benchmark reports. Latency is wrk's own measurement, from writing a request
-- to reading its response; a request whose slot found no free connection is sent late
-- and that wait is NOT part of its latency (coordinated omission), which is why a run
-- that did not sustain its rate is flagged rather than trusted.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_pacing_timespec;
int clock_gettime(int clk_id, bench_pacing_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_pacing_timespec")
local M = {}
local next_slot = nil

function M.now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000.0 + tonumber(ts.tv_nsec) / 1e6
end

-- Milliseconds to wait before the next request, for `rate` requests/s per wrk thread.
function M.delay(rate)
  if rate <= 0 then return 0 end
  local now = M.now_ms()
  if next_slot == nil or next_slot < now then next_slot = now end
  local wait = next_slot - now
  next_slot = next_slot + 1000.0 / rate
  return math.floor(wait + 0.5)
end

return M
