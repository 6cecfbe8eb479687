-- wrk script: GET for_user with a random distinct_id per request, among args[2] users (default 10,000,000:
-- so no answer is the same), and the app fields a mobile SDK sends. done() prints the same BENCH_JSON line
-- as post_template.lua.

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
end

local users = 10000000

function init(args)
   math.randomseed((tonumber(args[1]) or os.time()) + (thread_id or 0) * 1000003)
   users = tonumber(args[2]) or users
end

local random, format = math.random, string.format
local oses = { "iOS", "Android" }
local versions = { "3.0.0", "3.1.2", "3.2.0" }

function request()
   -- A user's OS and app version follow from their id: a user asking again sends the same query.
   local user = random(1, users)
   local path = format("/api/v1/analytics/public/feature-flags/for_user/?distinct_id=user-%d&os_name=%s&app_version=%s",
      user, oses[1 + user % 2], versions[1 + user % 3])
   return wrk.format("GET", path)
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
