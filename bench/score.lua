-- wrk script for POST /v1/score: every request is a new transaction (unique id), cards
-- drawn from a pool so velocity features see real histories.
-- Environment: BENCH_API_KEY, BENCH_RUN (id prefix), BENCH_RATE (total requests/s
-- across all connections; 0 = as fast as possible), BENCH_CONNECTIONS (wrk -c),
-- BENCH_CARDS (card pool size).
local key = os.getenv("BENCH_API_KEY") or "bench-key-not-a-secret"
local run = os.getenv("BENCH_RUN") or "run"
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local conns = tonumber(os.getenv("BENCH_CONNECTIONS") or "1")
local cards = tonumber(os.getenv("BENCH_CARDS") or "20000")
local threads = {}
local counter = 0
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}
local template = '{"transaction_id":"%s-%d-%d","timestamp":"%s","amount":"%d.%02d","currency":"EUR",'
  .. '"card_token":"ctok_%d","customer_id":"cust_%d","merchant_id":"m_%d","mcc":"%s","merchant_country":"DE",'
  .. '"card_country":"%s","channel":"%s","device_id":"dev_%d","ip_address":"10.%d.%d.%d","ip_country":"%s"}'
local mccs = {"5411", "5812", "5732", "4829", "5999", "7995"}
local countries = {"DE", "DE", "DE", "FR", "NL", "US"}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed((tid or 1) * 7919 + os.time())
end

-- Fixed-rate runs: one schedule of BENCH_RATE requests/s shared by all connections
-- (bench/pacing.lua says how, and what the latency then means).
local pacing = require("bench.pacing")
function delay()
  return pacing.delay(rate)
end

function request()
  counter = counter + 1
  local card = math.random(1, cards)
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time())
  local body = string.format(template, run, tid or 1, counter, ts, math.random(1, 900), math.random(0, 99),
    card, card, math.random(1, 5000), mccs[math.random(1, #mccs)], countries[math.random(1, #countries)],
    (math.random() < 0.6) and "online" or "card_present", card % 3000, card % 250, math.random(0, 255),
    math.random(1, 254), countries[math.random(1, #countries)])
  return wrk.format("POST", "/v1/score", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
