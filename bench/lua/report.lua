-- Appended to every wrk script the benchmark runs: done() prints one machine-readable line,
-- `BENCHJSON {...}`, with the summary, latency percentiles (microseconds) and the per-thread
-- counters a scenario script keeps in the globals `counts` (HTTP status -> n) and `extra`.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function encode(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = string.format("%q", tostring(k)) .. ":" .. encode(x)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return "null"
    end
    return string.format("%.17g", v)
  elseif t == "boolean" then
    return tostring(v)
  elseif v == nil then
    return "null"
  end
  return string.format("%q", tostring(v))
end

local function merge(into, from)
  if type(from) ~= "table" then
    return
  end
  for k, v in pairs(from) do
    k = tostring(k)
    into[k] = (into[k] or 0) + v
  end
end

function done(summary, latency, requests)
  local statuses, extra = {}, {}
  for _, thread in ipairs(threads) do
    merge(statuses, thread:get("counts"))
    merge(extra, thread:get("extra"))
  end
  local out = {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    errors = summary.errors,
    statuses = statuses,
    extra = extra,
    latency = {
      min = latency.min,
      max = latency.max,
      mean = latency.mean,
      p50 = latency:percentile(50),
      p75 = latency:percentile(75),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      p999 = latency:percentile(99.9),
    },
  }
  io.write("BENCHJSON " .. encode(out) .. "\n")
  if done_hook then
    done_hook(threads)
  end
end
