-- wrk script of the serving benchmark (benchmarks/serving/load.py): POST JSON bodies read
-- from a file, one per line, cycling through them; at the end print one machine-readable line.
--
--   wrk -t2 -c8 -d10s --latency http://127.0.0.1:8000/score -s post_bodies.lua -- bodies.jsonl
--
-- Each thread starts at a different body so that concurrent threads do not send the
-- same payment at the same moment. The last line printed is
--   BENCH_RESULT {"requests":..,"rps":..,"p50_ms":..,"p99_ms":..,"p999_ms":..,"non2xx":..,...}
-- (wrk counts a status >= 400 under errors.status; "non2xx" is that count).

local bodies_path
local requests = {}
local position = 0
local thread_counter = 0

function setup(thread)
  thread:set("thread_index", thread_counter)
  thread_counter = thread_counter + 1
end

function init(args)
  bodies_path = args[1]
  if bodies_path == nil then
    error("usage: wrk ... -s post_bodies.lua -- BODIES.jsonl")
  end
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(bodies_path) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  if #requests == 0 then
    error("no request bodies in " .. bodies_path)
  end
  -- Spread the threads' starting points over the bodies.
  local index = tonumber(thread_index) or 0
  position = (index * 97) % #requests
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function done(summary, latency, requests_)
  local errors = summary.errors
  local seconds = summary.duration / 1e6
  local ms = function(p) return latency:percentile(p) / 1000.0 end
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"seconds":%.3f,"rps":%.2f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
    '"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,"non2xx":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0, latency.mean / 1000.0,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
