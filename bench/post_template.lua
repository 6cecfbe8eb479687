-- wrk script: POST a JSON body built from a template file, with a fresh random
-- UUID (v4) in place of every "__UUID__" marker, for every request. So no two
-- requests carry the same event uuid and server-side dedup never short-cuts.
--
--   wrk ... -s bench/post_template.lua URL -- TEMPLATE_FILE SEED
--
-- done() prints one line "BENCH_JSON {...}" that bench/run_ingest.py parses.

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
end

local parts
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   local f = assert(io.open(args[1], "rb"))
   local text = f:read("*a")
   f:close()
   parts = {}
   local start = 1
   while true do
      local i, j = string.find(text, "__UUID__", start, true)
      if not i then break end
      table.insert(parts, string.sub(text, start, i - 1))
      start = j + 1
   end
   table.insert(parts, string.sub(text, start))
   -- Each thread (its own Lua state) gets its own random stream.
   math.randomseed((tonumber(args[2]) or os.time()) + (thread_id or 0) * 1000003)
   for _ = 1, 10 do math.random() end
end

local random, format, concat = math.random, string.format, table.concat

local function uuid4()
   return format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
      random(0, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xfff),
      random(0x8000, 0xbfff), random(0, 0xffff), random(0, 0xffff), random(0, 0xffff))
end

function request()
   local n = #parts
   local buf = {}
   for i = 1, n - 1 do
      buf[2 * i - 1] = parts[i]
      buf[2 * i] = uuid4()
   end
   buf[2 * n - 1] = parts[n]
   return wrk.format("POST", nil, headers, concat(buf))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(format(
      'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f,"stdev":%.1f}}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
      latency.max, latency.mean, latency.stdev))
end
