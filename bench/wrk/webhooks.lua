-- wrk script for figure 2 (bench/scripts/ingest_http.sh).
--   BENCH_WRK_MODE=loops  cycle through the pre-signed Loops deliveries in BENCH_WRK_REQUESTS
--                         (bench/python/sign_loops.py wrk): every request a different
--                         webhook-id; each thread takes every Nth line (N = BENCH_WRK_THREADS)
--   BENCH_WRK_MODE=plain  wrk's own GET of the URL (the /healthz baseline)
-- Either way, done() writes a JSON summary to BENCH_WRK_OUT.

local mode = os.getenv("BENCH_WRK_MODE") or "plain"
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

if mode == "loops" then
  function init(args)
    local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "2")
    local f = assert(io.open(os.getenv("BENCH_WRK_REQUESTS"), "r"))
    local body = f:read("*l")
    reqs = {}
    local i = 0
    for line in f:lines() do
      if i % nthreads == tid - 1 then
        local id, ts, sig = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)")
        reqs[#reqs + 1] = wrk.format("POST", "/webhooks/loops", {
          ["Content-Type"] = "application/json",
          ["webhook-id"] = id,
          ["webhook-timestamp"] = ts,
          ["webhook-signature"] = sig,
        }, body)
      end
      i = i + 1
    end
    f:close()
    idx = 0
    wrapped = 0
  end

  function request()
    idx = idx + 1
    if idx > #reqs then
      idx = 1
      wrapped = wrapped + 1
    end
    return reqs[idx]
  end
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do
    wraps = wraps + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  local out = string.format(
    '{"mode": "%s", "requests": %d, "duration_s": %.3f, "requests_per_s": %.1f, ' ..
    '"non_2xx": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"timeouts": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"mean_ms": %.3f, "reused_ids": %d}',
    mode, summary.requests, secs, summary.requests / secs, e.status, e.connect, e.read,
    e.write, e.timeout, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, latency.mean / 1e3, wraps)
  local path = os.getenv("BENCH_WRK_OUT")
  if path then
    local f = assert(io.open(path, "w"))
    f:write(out .. "\n")
    f:close()
  end
  io.write(out .. "\n")
end
