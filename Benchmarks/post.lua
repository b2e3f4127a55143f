-- wrk script for the relay benchmark: POSTs one body file with a pyroscope-io push's
-- headers, optionally paced (fixed per-connection delay) or stopped after N responses,
-- and prints one JSON line with counts and the latency distribution at the end.
--
-- Environment:
--   BENCH_BODY       path of the body file (required)
--   BENCH_PATH       request path (default /push.v1.PusherService/Push)
--   BENCH_DELAY_MS   if > 0, each connection waits this many ms between requests
--                    (rate ~ connections * 1000 / (delay + latency): an open-ish loop)
--   BENCH_MAX        if > 0, each thread stops after this many responses
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/push.v1.PusherService/Push"
wrk.body = body
wrk.headers["Content-Type"] = "application/proto"
wrk.headers["Content-Encoding"] = "gzip"
wrk.headers["User-Agent"] = "pyroscope-rs/pyspy/1.4.0 reqwest"
wrk.headers["Accept"] = "*/*"

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
local max_n = tonumber(os.getenv("BENCH_MAX") or "0") or 0

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

if max_n > 0 then
  local n = 0
  function response(status, headers, body)
    n = n + 1
    if n >= max_n then
      wrk.thread:stop()
    end
  end
end

local pcts = {}
for p = 1, 99 do pcts[#pcts + 1] = p end
for _, p in ipairs({99.5, 99.9, 99.95, 99.99}) do pcts[#pcts + 1] = p end

function done(summary, latency, requests)
  local e = summary.errors
  local out = {}
  for _, p in ipairs(pcts) do
    out[#out + 1] = string.format("[%g,%d]", p, latency:percentile(p))
  end
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"pct":[%s]}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(out, ",")))
end
