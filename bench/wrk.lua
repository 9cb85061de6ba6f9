-- wrk script of bench/run.sh. One file for every fixed-duration scenario; the
-- scenario is chosen by environment variables (wrk passes none of its own):
--
--   BENCH_MODE=bare      GET / (the bare server of examples/bench_bare.rs)
--   BENCH_MODE=healthz   GET /healthz (the HTTP ceiling)
--   BENCH_MODE=token     POST /internal/passport/gmail/token for a random user
--                        among BENCH_USERS (numbers BENCH_OFFSET+1 ..), with
--                        Authorization: Bearer BENCH_KEY and BENCH_SCOPES
--   BENCH_MODE=status    GET /api/passport/gmail with a random session JWT
--                        from the file BENCH_JWT_FILE (one per line)
--
-- User ids are the seeder's (examples/bench_seed.rs): Uuid::from_u128(n),
-- i.e. n as 32 hex digits. At the end one machine-readable line is printed:
--   BENCH_RESULT requests=… duration_us=… p50_us=… p99_us=… errors=… (and
--   the kinds of errors; `status` counts answers >= 400)

local mode = os.getenv("BENCH_MODE") or "healthz"
local users = tonumber(os.getenv("BENCH_USERS") or "10000")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local scopes = os.getenv("BENCH_SCOPES") or '["calendar.events"]'

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_no", counter)
end

local function seed_random()
   -- Different sequences per thread and per run.
   local t = os.time()
   math.randomseed(t * 7919 + (thread_no or 0) * 104729 + math.floor(os.clock() * 1e6))
   for _ = 1, 10 do math.random() end
end

-- Users above 2^48 would need more than 12 hex digits: not used here.
local function user_id(n)
   return string.format("00000000-0000-0000-0000-%012x", n)
end

if mode == "token" then
   local key = os.getenv("BENCH_KEY") or error("BENCH_KEY is not set")
   local headers = {
      ["Authorization"] = "Bearer " .. key,
      ["Content-Type"] = "application/json",
   }
   local path = "/internal/passport/gmail/token"

   function init(args)
      seed_random()
   end

   function request()
      local n = offset + math.random(users)
      local body = '{"user_id":"' .. user_id(n) .. '","scopes":' .. scopes .. '}'
      return wrk.format("POST", path, headers, body)
   end
elseif mode == "status" then
   local file = os.getenv("BENCH_JWT_FILE") or error("BENCH_JWT_FILE is not set")
   local requests = {}

   function init(args)
      seed_random()
      -- Pre-format one request per JWT; pick one at random per request.
      for jwt in io.lines(file) do
         if #jwt > 0 then
            requests[#requests + 1] = wrk.format("GET", "/api/passport/gmail",
               { ["Authorization"] = "Bearer " .. jwt })
         end
      end
      if #requests == 0 then error("no JWT in " .. file) end
   end

   function request()
      return requests[math.random(#requests)]
   end
elseif mode == "bare" then
   wrk.method = "GET"
   wrk.path = "/"
elseif mode == "healthz" then
   wrk.method = "GET"
   wrk.path = "/healthz"
else
   error("unknown BENCH_MODE " .. mode)
end

function done(summary, latency, requests)
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.status + e.timeout
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d errors=%d " ..
      "connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(99), latency.max, errors,
      e.connect, e.read, e.write, e.status, e.timeout))
end
