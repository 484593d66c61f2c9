-- wrk script: replays pre-signed deliveries, one file per wrk thread (bench/loadgen.py writes them).
-- Each line: delivery_id \t timestamp \t signature \t body. Signing inside wrk's Lua is impractical, and
-- svix timestamps stay valid for 5 minutes, so the files are written just before the run.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  reqs = {}
  for line in io.lines(args[1] .. "/wrk_" .. tid .. ".tsv") do
    local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", wrk.path, {
      ["Content-Type"] = "application/json", ["svix-id"] = id, ["svix-timestamp"] = ts,
      ["svix-signature"] = sig }, body)
  end
  i = 0
  wrapped = 0
end

function request()
  i = i + 1
  if i > #reqs then i = 1; wrapped = wrapped + 1 end
  return reqs[i]
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do wraps = wraps + (t:get("wrapped") or 0) end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, wraps))
end
