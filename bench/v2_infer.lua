-- wrk script for POST /v2/models/{name}/infer (Open Inference Protocol): the SAME request
-- bodies for every server. Bodies are read from BENCH_BODIES (one JSON document per line,
-- written by bench.compare) and sent in turn, so every server sees the same sequence.
-- Environment: BENCH_BODIES (file), BENCH_API_KEY (sent as X-API-Key; a server without
-- authentication ignores the header), BENCH_RATE (total requests/s across all
-- connections; 0 = as fast as possible).
local key = os.getenv("BENCH_API_KEY") or "bench-key-not-a-secret"
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local bodies = {}
local path = os.getenv("BENCH_BODIES")
local counter = 0
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}

for line in io.lines(path) do
  if #line > 0 then table.insert(bodies, line) end
end
if #bodies == 0 then error("BENCH_BODIES " .. tostring(path) .. " holds no request bodies") end

function init(args)
  math.randomseed(os.time())
end

-- Fixed-rate runs: one schedule of BENCH_RATE requests/s shared by all connections
-- (bench/pacing.lua says how, and what the latency then means).
local pacing = require("bench.pacing")
function delay()
  return pacing.delay(rate)
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, bodies[(counter % #bodies) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
