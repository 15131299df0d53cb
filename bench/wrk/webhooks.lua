-- wrk script for figure 2 (bench/scripts/ingest_http.sh).
--   BENCH_WRK_MODE=loops  cycle through the pre-signed Loops deliveries in BENCH_WRK_REQUESTS
--                         (bench/python/sign_loops.py wrk): every request a different
--                         webhook-id; this process takes every Nth line from the Kth
--                         (N = BENCH_WRK_PARTS, K = BENCH_WRK_PART, default 1 of 1)
--   BENCH_WRK_MODE=plain  wrk's own GET of the URL (the /healthz baseline)
-- Either way, done() writes a JSON summary to BENCH_WRK_OUT.
--
-- Run with one thread (-t1); for more load, more wrk processes side by side, each its own
-- part. wrk starts each thread as soon as that thread's init() returns and starts its clock
-- only after the last one, so with -tN the first threads send requests (counted) for as long
-- as the others take to load their requests: with N = 2 that inflated the rate by a quarter
-- when init() took four seconds. Processes started together load in parallel instead.

local mode = os.getenv("BENCH_WRK_MODE") or "plain"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

if mode == "loops" then
  function init(args)
    local parts = tonumber(os.getenv("BENCH_WRK_PARTS") or "1")
    local part = tonumber(os.getenv("BENCH_WRK_PART") or "1")
    local f = assert(io.open(os.getenv("BENCH_WRK_REQUESTS"), "r"))
    local body = f:read("*l")
    local data = f:read("*a")
    f:close()
    -- Every request is these four pieces around its id, timestamp and signature, in this
    -- order (wrk.format would order the headers by Lua's table iteration).
    local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
    local head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host ..
      "\r\nContent-Type: application/json\r\nContent-Length: " .. #body ..
      "\r\nwebhook-id: "
    local to_ts, to_sig = "\r\nwebhook-timestamp: ", "\r\nwebhook-signature: "
    local tail = "\r\n\r\n" .. body
    local find, sub = string.find, string.sub
    reqs = {}
    local i, pos = 0, 1
    while true do
      local eol = find(data, "\n", pos, true)
      if not eol then break end
      if i % parts == part - 1 then
        local t1 = find(data, "\t", pos, true)
        local t2 = find(data, "\t", t1 + 1, true)
        reqs[#reqs + 1] = head .. sub(data, pos, t1 - 1) .. to_ts .. sub(data, t1 + 1, t2 - 1)
          .. to_sig .. sub(data, t2 + 1, eol - 1) .. tail
      end
      i = i + 1
      pos = eol + 1
    end
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
