-- wrk script for POST /v2/models/{name}/infer (Open Inference Protocol): the same
-- one-row request every time, from BENCH_BODY; the path comes from the wrk URL.
-- Prints the same BENCH_JSON summary line as score.lua.
local key = os.getenv("BENCH_API_KEY") or "bench-key-not-a-secret"
local body = os.getenv("BENCH_BODY")
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}

function request()
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
