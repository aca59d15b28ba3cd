--- Content handler of the fake Bland Evals API (LuaJIT under ngx_http_lua: Lua 5.1 code).
--
-- Endpoints (auth: `authorization: test-key` or `Bearer test-key`):
--   GET /v1/evals/runs/{run_id}/call-results    include_agent_results, limit, starting_after,
--                                               ending_before (API reference 1.6, 5.17)
--   GET /v1/evals/runs/{run_id}/agent-snapshots single page (5.19)
--   GET /_stats?run=ID   {"requests","connections","paths","auth","max_in_flight"} for one
--                        run id (no auth); max_in_flight: slow runs' most concurrent requests
--   GET /_reset          clears all state: stats and the once-per-(run, cursor) faults
--
-- Run ids (a suffix "@tag" on fault-* and opaque-* ids gives the same run with its own state
-- and stats, e.g. "fault-429@t1"):
--   run-<N>       N in 0..5000: N call results
--   run-<other>   anything else after "run-" (e.g. "run-a b/c?d"): 3 call results
--   opaque-<N>    like run-<N>, but cursors are opaque tokens, not item ids
--   slow<MS>-<N>  like run-<N>, but every call-results page takes MS milliseconds longer
--   fault-*       60 call results and a fault; see FAULTS below
-- Items come from pagegen with a seed fixed per run, so every page is a slice of one run.
-- Every item echoes the run id as given (percent-decoded path segment) in eval_run_id.

local pagegen = require "pagegen"

local M = {}
local shm = ngx.shared.fakeapi
local NULL = pagegen.null               -- pagegen.encode writes it as null
local AGENTS, FAULT_ITEMS, MAX_RUN = 3, 60, 5000
local SEP = "\31"                       -- joins parts of shared-dict keys
local NO_AUTH = "\1"                    -- stats marker for a missing authorization header

local FAULTS = {}
for name in ([[fault-429 fault-503-once fault-500-forever fault-reset fault-truncated
    fault-truncated-json fault-html502 fault-no-cursor fault-stuck-cursor fault-repeat-id
    fault-errors-200 fault-slow fault-deep fault-big fault-not-envelope]]):gmatch("%S+") do
  FAULTS[name] = true
end

local function json(v) return pagegen.encode(v) end

local function send(status, body, ctype)
  ngx.status = status
  ngx.header["Content-Type"] = ctype or "application/json"
  ngx.header["Content-Length"] = #body      -- the gzip filter drops it when it compresses
  ngx.print(body)
end

local function fail(status, code, message)
  send(status, json { data = NULL, errors = { { error = code, message = message } } })
end

-- Headers, then half the body of a Content-Length response, then close: the client sees a
-- transfer error. Written on the raw socket so that neither gzip nor chunking gets in the way.
local function send_cut(body)
  local sock = assert(ngx.req.socket(true))
  sock:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\nx-request-id: " .. ngx.ctx.request_id .. "\r\n\r\n" .. body:sub(1, math.floor(#body / 2)))
  ngx.exit(444)                            -- nginx closes the connection without a response
end

-- true the first time a (run, cursor) pair asks, until /_reset
local function once(run_id, cursor)
  return (shm:add("once" .. SEP .. run_id .. SEP .. cursor, true))
end

---------------------------------------------------------------------------------------------
-- Stats

local function record(run_id)
  shm:incr("n" .. SEP .. run_id, 1, 0)
  if shm:add("c" .. SEP .. run_id .. SEP .. ngx.var.connection, true) then
    shm:incr("nc" .. SEP .. run_id, 1, 0)
  end
  shm:rpush("p" .. SEP .. run_id, ngx.var.request_uri)
  shm:rpush("a" .. SEP .. run_id, ngx.var.http_authorization or NO_AUTH)
end

-- Shared-dict lists have no range read: pop each value and push it back (one worker, and
-- nothing here yields, so no other request interleaves).
local function read_list(key, map)
  local out = {}
  for i = 1, shm:llen(key) or 0 do
    local v = shm:lpop(key)
    shm:rpush(key, v)
    out[i] = map and map(v) or v
  end
  return out
end

local function stats(run_id)
  return json {
    requests = shm:get("n" .. SEP .. run_id) or 0,
    max_in_flight = shm:get("maxinflight" .. SEP .. run_id) or 0,
    connections = shm:get("nc" .. SEP .. run_id) or 0,
    paths = read_list("p" .. SEP .. run_id),
    auth = read_list("a" .. SEP .. run_id, function(v) return v == NO_AUTH and NULL or v end),
  }
end

---------------------------------------------------------------------------------------------
-- Runs

local function valid_utf8(s)            -- pagegen's writer assumes it
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xC2 and c < 0xE0 and 2 or c >= 0xE0 and c < 0xF0 and 3
      or c >= 0xF0 and c < 0xF5 and 4
    if not len then return false end
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if not b or b < 0x80 or b > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

local function name_seed(name)
  local h = 7
  for i = 1, #name do h = (h * 31 + name:byte(i)) % 2147483647 end
  return h
end

-- run id -> { n = items, seed =, opaque =, fault = } or nil (404)
local function lookup(run_id)
  if not valid_utf8(run_id) then return nil end
  local n = run_id:match("^run%-(%d+)$")
  if n then
    n = tonumber(n)
    return n <= MAX_RUN and { n = n, seed = n + 1 } or nil
  end
  if run_id:match("^run%-") then return { n = 3, seed = 424242 } end
  local ms, sn = run_id:match("^slow(%d+)%-(%d+)$")
  if ms then
    sn = tonumber(sn)
    return sn <= MAX_RUN and { n = sn, seed = sn + 1, delay = tonumber(ms) / 1000 } or nil
  end
  local base = run_id:match("^[^@]*")
  n = base:match("^opaque%-(%d+)$")
  if n then
    n = tonumber(n)
    return n <= MAX_RUN and { n = n, seed = n + 1, opaque = true } or nil   -- same items as run-N
  end
  if FAULTS[base] then return { n = FAULT_ITEMS, seed = name_seed(base), fault = base } end
  return nil
end

-- Item ids of a run (they depend only on the seed), cached per worker. Built once per seed:
-- about 0.3 s for 5000 items; agents = 0 because an id does not depend on the agents.
local id_cache = {}
local page_cache = {}
local function ids(run)
  local key = run.seed .. ":" .. run.n
  local c = id_cache[key]
  if not c then
    local _, value = pagegen.call_results_page { seed = run.seed, count = run.n, agents = 0 }
    c = { list = {}, index = {} }
    for k, item in ipairs(value.data.data) do c.list[k], c.index[item.id] = item.id, k end
    id_cache[key] = c
  end
  return c
end

local function token(k) return ngx.encode_base64("c:" .. k) end   -- opaque cursor for item k

-- cursor -> index of the item it names, or nil
local function cursor_index(run, cursor)
  if run.opaque then
    local k = tonumber((ngx.decode_base64(cursor) or ""):match("^c:(%d+)$"))
    return k and k >= 1 and k <= run.n and k or nil
  end
  return ids(run).index[cursor]
end

local function cursor_of(run, k) return run.opaque and token(k) or ids(run).list[k] end

---------------------------------------------------------------------------------------------
-- GET call-results

local PAD = ("Padding that makes this page about 3 MB, to exercise a client's body size cap. ")

local function call_results(run_id, run, args)
  if run.delay then
    -- how many of this run's requests wait at once: the proof that a client overlaps them
    local key = "inflight" .. SEP .. run_id
    local now = shm:incr(key, 1, 0)
    if now > (shm:get("maxinflight" .. SEP .. run_id) or 0) then shm:set("maxinflight" .. SEP .. run_id, now) end
    ngx.sleep(run.delay)
    shm:incr(key, -1)
  end
  local include = args.include_agent_results
  if include == nil or include == "false" then include = false
  elseif include == "true" then include = true
  else return fail(400, "BAD_REQUEST", "include_agent_results must be true or false") end

  local limit = args.limit
  if limit == nil then limit = 25
  else
    limit = type(limit) == "string" and limit:match("^%d+$") and tonumber(limit)
    if not limit or limit < 1 or limit > 100 then
      return fail(400, "BAD_REQUEST", "limit must be an integer between 1 and 100")
    end
  end

  local sa, eb = args.starting_after, args.ending_before
  if sa ~= nil and eb ~= nil then
    return fail(400, "BAD_REQUEST", "Cannot combine starting_after and ending_before")
  end
  local cursor = sa or eb
  local at
  if cursor ~= nil then
    at = type(cursor) == "string" and cursor_index(run, cursor)
    if not at then
      return fail(400, "INVALID_CURSOR", "Unknown cursor: " .. (type(cursor) == "string" and cursor or "(not one string)"))
    end
  end

  -- Faults act on "page 2": every request with starting_after; some only once per cursor.
  local f, later = run.fault, sa ~= nil
  if f == "fault-not-envelope" then return send(200, '[{"id":"not-an-envelope"}]') end
  if later then
    if f == "fault-429" and once(run_id, sa) then
      ngx.header["Retry-After"] = "1"
      return fail(429, "RATE_LIMITED", "Too many requests, retry after 1 second")
    elseif f == "fault-503-once" and once(run_id, sa) then
      return fail(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable")
    elseif f == "fault-500-forever" then
      return fail(500, "INTERNAL_SERVER_ERROR", "Internal server error")
    elseif f == "fault-html502" and once(run_id, sa) then
      return send(502, "<html><head><title>502 Bad Gateway</title></head><body><center>"
        .. "<h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>\n",
        "text/html")
    elseif f == "fault-slow" then
      ngx.sleep(3)
    end
  elseif eb == nil and f == "fault-deep" then
    return send(200, '{"data":{"object":"list","data":' .. ("["):rep(2000) .. ("]"):rep(2000)
      .. ',"has_more":false,"next_cursor":null},"errors":null}')
  end

  -- The slice: items first .. first+count-1 (1-based run indexes).
  local first, count, has_more, next_cursor
  if eb ~= nil then
    -- ending_before=X: the `limit` items just before X, still in ascending order. has_more
    -- says whether items exist before them, and next_cursor is then the FIRST item's id (or
    -- token): the value to pass as ending_before to keep paging backwards.
    first = math.max(1, at - limit)
    count = at - first
    has_more = first > 1
    if has_more then next_cursor = cursor_of(run, first) end
  else
    first = (at or 0) + 1
    if later and f == "fault-repeat-id" then first = first - 1 end   -- repeats the cursor item
    count = math.min(limit, run.n - first + 1)
    has_more = first + count - 1 < run.n
    if has_more and run.opaque then next_cursor = token(first + count - 1) end
    -- (otherwise pagegen writes the last item's id when has_more, else null)
  end
  if later and f == "fault-stuck-cursor" then has_more, next_cursor = true, sa end
  local no_cursor = not later and eb == nil and f == "fault-no-cursor"
  if no_cursor then has_more, next_cursor = true, "@NULL@" end

  -- slow runs serve concurrency tests: their pages are made once per worker, so that
  -- the only cost the server adds is the delay
  local key = run.delay and table.concat({ run_id, first, count, tostring(include) }, SEP)
  local text, value
  if key and page_cache[key] then
    text = page_cache[key]
  else
    text, value = pagegen.call_results_page {
      seed = run.seed, run_id = run_id, count = count, after_index = first - 1,
      include_agent_results = include, agents = AGENTS, has_more = has_more,
      next_cursor = next_cursor, run_status = "COMPLETE", resolved = run.n,
    }
    if key then page_cache[key] = text end
  end
  if no_cursor then text = text:gsub('"next_cursor":"@NULL@"', '"next_cursor":null', 1) end

  if later and (f == "fault-reset" and once(run_id, sa) or f == "fault-truncated") then
    return send_cut(text)
  elseif later and f == "fault-truncated-json" then
    return send(200, text:sub(1, math.floor(#text / 2)))
  elseif later and f == "fault-errors-200" then
    -- items have no "errors" key, so the first match is the envelope's
    text = text:gsub('"errors":null', '"errors":[{"error":"PARTIAL_FAILURE",'
      .. '"message":"Some call results could not be loaded"}]', 1)
  elseif not later and eb == nil and f == "fault-big" then
    local per_item = math.ceil(3e6 / math.max(count, 1))
    local pad = PAD:rep(math.ceil(per_item / #PAD)):sub(1, per_item)
    for _, item in ipairs(value.data.data) do item.call_display_name = pad end
    text = json(value)                    -- nulls in value are pagegen.null
  end
  return send(200, text)
end

---------------------------------------------------------------------------------------------

function M.handle()
  local request_id = "req_" .. shm:incr("request_id", 1, 0)
  ngx.ctx.request_id = request_id
  ngx.header["x-request-id"] = request_id
  local path = ngx.var.request_uri:match("^[^?]*")
  local args = ngx.req.get_uri_args()

  if path == "/_reset" then
    shm:flush_all()
    shm:flush_expired()
    id_cache = {}
    return send(200, '{"data":{"reset":true},"errors":null}')
  elseif path == "/_stats" then
    return send(200, stats(type(args.run) == "string" and args.run or ""))
  end

  -- The run id is one path segment of the raw URI: it may hold an encoded '/' or '?'. '+' is
  -- literal in a path, but ngx.unescape_uri would turn it into a space.
  local seg, rest = path:match("^/v1/evals/runs/([^/]+)(.*)$")
  local run_id = seg and ngx.unescape_uri((seg:gsub("%+", "%%2B")))
  if run_id then record(run_id) end

  local auth = ngx.var.http_authorization
  if auth ~= "test-key" and auth ~= "Bearer test-key" then
    return fail(401, "AUTH_FAILURE", "Unauthorized")
  end
  if ngx.req.get_method() ~= "GET" then
    return fail(405, "METHOD_NOT_ALLOWED", "Only GET is implemented")
  end
  if not run_id or (rest ~= "/call-results" and rest ~= "/agent-snapshots") then
    return fail(404, "NOT_FOUND", "No such endpoint: " .. path)
  end
  local run = lookup(run_id)
  if not run then return fail(404, "EVAL_RUN_NOT_FOUND", "Eval run not found") end
  if rest == "/agent-snapshots" then
    return send(200, (pagegen.agent_snapshots_page { seed = run.seed, run_id = run_id, count = AGENTS }))
  end
  return call_results(run_id, run, args)
end

return M
