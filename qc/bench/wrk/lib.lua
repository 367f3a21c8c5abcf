-- qc bench wrk: helpers every script loads with
--   local qc = dofile(os.getenv("QC_WRK_LIB"))
-- (qc.bench.wrk.run sets QC_WRK_LIB). It gives:
--   qc.report()            -> installs wrk's done() printing one "QCWRK {json}" line
--   qc.paths(file)         -> the lines of a file (request paths, tokens, ...)
--   qc.uuid()              -> a random UUID-shaped string (Idempotency-Key)
--   qc.field(body, name)   -> a JSON string/number field's value (first match), or nil
--   qc.fail(what)          -> count a failed request or flow step (reported as "failures",
--                             and by ``what``, e.g. "checkout 503 inventory_loading", as "failed")
--   qc.flow_done()         -> count a completed multi-step flow (reported as "flows")
--   thread_id              -> global: this thread's number, 1..threads (set in setup)
-- Multi-step flows (a token, a cart id from one answer used by the next request, an
-- Idempotency-Key per checkout) keep their state in the thread's globals; wrk does not say
-- which connection an answer came on, so run them with connections == threads (each
-- thread then drives exactly one connection and its state machine is exact).
local qc = {}
local threads = {}
local counter = 0

-- counters live in plain globals: wrk copies only strings, numbers and tables between threads
qc_failures = 0
qc_flows = 0
qc_failed = {}

function qc.fail(what)
  qc_failures = qc_failures + 1
  -- a JSON key as it is printed: letters, digits, spaces, _ and . only
  local key = string.gsub(what or "unnamed", "[^%w%s_%.]", "")
  qc_failed[key] = (qc_failed[key] or 0) + 1
end

function qc.flow_done()
  qc_flows = qc_flows + 1
end

function qc.paths(file)
  local out = {}
  for line in io.lines(file) do
    if #line > 0 then out[#out + 1] = line end
  end
  return out
end

function qc.uuid()
  local t = "xxxxxxxxxxxx4xxxyxxxxxxxxxxxxxxx"
  return (string.gsub(t, "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

function qc.field(body, name)
  if body == nil then return nil end
  local s = string.match(body, '"' .. name .. '"%s*:%s*"([^"]*)"')
  if s ~= nil then return s end
  return string.match(body, '"' .. name .. '"%s*:%s*(-?[%d%.]+)')
end

function qc.report()
  setup = function(thread)
    counter = counter + 1
    thread:set("thread_id", counter)
    threads[#threads + 1] = thread
  end
  done = function(summary, latency, requests)
    local failures, flows, failed = 0, 0, {}
    for _, t in ipairs(threads) do
      failures = failures + (t:get("qc_failures") or 0)
      flows = flows + (t:get("qc_flows") or 0)
      for what, n in pairs(t:get("qc_failed") or {}) do failed[what] = (failed[what] or 0) + n end
    end
    local kinds = {}
    for what, n in pairs(failed) do kinds[#kinds + 1] = string.format('"%s":%d', what, n) end
    local e = summary.errors
    io.write(string.format(
      'QCWRK {"duration_us":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"p999_us":%d,"max_us":%d,"mean_us":%.1f,"failures":%d,"flows":%d,"failed":{%s}}\n',
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
      failures, flows, table.concat(kinds, ",")))
  end
end

return qc
