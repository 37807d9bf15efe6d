-- wrk script: POST pre-generated PCS bodies, each body once (per connection stride), and report
-- latency percentiles and status counts as one JSON line. FLK_BENCH_BODIES names the file of bodies
-- (one JSON per line); FLK_BENCH_TENANT, when set, is sent as X-Tenant-Id.
local bodies_path = os.getenv("FLK_BENCH_BODIES")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(bodies_path) do
    bodies[#bodies + 1] = line
  end
  nthreads = tonumber(os.getenv("FLK_BENCH_THREADS") or "1")
  index = id
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local tenant = os.getenv("FLK_BENCH_TENANT")
  if tenant and tenant ~= "" then wrk.headers["X-Tenant-Id"] = tenant end
end

function request()
  index = index + nthreads
  if index > #bodies then index = (index % #bodies) + 1 end
  return wrk.format(nil, nil, nil, bodies[index])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for code, n in pairs(s) do counts[code] = (counts[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(counts) do parts[#parts + 1] = string.format('"%d": %d', code, n) end
  io.write(string.format(
    'FLK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ", ")))
end
