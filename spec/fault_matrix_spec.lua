-- The fault matrix: every fault mode of the fake Bland API (spec/support/fakeapi/handler.lua),
-- a wrong key, a missing run and a refused connection, x prefetch on and off, x each way of
-- paging a run: the call_results and agent_results iterators, a walk of their single pages
-- (*_page with next_cursor), and client:many with one stream of each. The transport is the
-- one the spec runs with: libcurl under lua5.4 and luajit, the ngx transport when
-- run-specs.sh runs it inside nginx (which never prefetches: both settings must give the same).
--
-- Every cell asserts its exact outcome: the run's items once each and in order (against
-- pagegen's copy of the run), or the error the fault must give, field by field, raised or
-- returned after the items of the pages before the faulty one and no sooner; the requests the
-- server saw; and that the API key is in no error field, no tostring(err) and no line of
-- the fake API's or (under nginx) the app's error log.
local blandeval = require "blandeval"
local core = require "blandeval.core"
local fakeapi = require "fakeapi"
local pagegen = require "pagegen"
local transport = require "transport"

local IN_NGINX = ngx ~= nil
local TRANSPORT = IN_NGINX and "ngx" or "curl"

-- A key the fake API accepts (its KEYS) and one it refuses: long and unlike anything else in
-- an error or a log, so that finding either, or a 10-byte piece of either, means a leak.
local KEY = "bk_FaultMatrix_Q7vX2mK9pL4wZ8nR3tY6sJ1"
local WRONG_KEY = "bk_WrongMatrixKey_H3fD8sA2kJ6gL1zX9cV4"

local PAGE = 25              -- page_size and the walks' limit: the first fault is on page 2
local MAX_RETRIES = 2
local MAX_BODY = 1000000     -- fault-big's first page is 3 MB (the cap is libcurl's option)
local SLOW_LIMIT = 0.5       -- fault-slow sleeps 3 s; an attempt ends after this: libcurl's
local SHORT = "/_bland_test_short"   -- timeout, or this location's proxy_read_timeout (nginx)
local BOUND = 1000           -- more items than a run has: a loop that goes on fails, not hangs
local REFUSED = "http://127.0.0.1:9"   -- a port nobody listens on (as run-specs.sh's)

---------------------------------------------------------------------------------------------
-- The runs' items, as the fake API makes them: pagegen with the run's seed (run-N: N + 1;
-- fault-*: handler.lua's name_seed of the name without its @tag).

local function name_seed(name)
  local h = 7
  for i = 1, #name do h = (h * 31 + name:byte(i)) % 2147483647 end
  return h
end

-- seed -> { call = call result ids, agent = agent result ids (call order, then agent order) }
local lists = {}
local function lists_of(seed)
  if not lists[seed] then
    local call, agent = {}, {}
    for _, item in ipairs(pagegen.call_results { seed = seed, count = 60, agents = 3,
                                                  include_agent_results = true }) do
      call[#call + 1] = item.id
      for _, r in ipairs(item.agent_results) do agent[#agent + 1] = r.id end
    end
    lists[seed] = { call = call, agent = agent }
  end
  return lists[seed]
end

local function slice(list, from, to)
  local out = {}
  for i = from, math.min(to, #list) do out[#out + 1] = list[i] end
  return out
end

local function pages_of(n) return math.max(1, math.ceil(n / PAGE)) end

-- What a walk of single pages reads of a fault-repeat-id run: each page after the first starts
-- again with the item its cursor names (the pages' own ids are not checked across calls).
-- -> ids, pages
local function repeated_walk(list)
  local out, first, pages = {}, 1, 0
  while true do
    local last = math.min(first + PAGE - 1, #list)
    for i = first, last do out[#out + 1] = list[i] end
    pages = pages + 1
    if last >= #list then return out, pages end
    first = last
  end
end

---------------------------------------------------------------------------------------------
-- The ways of paging a run. read(client, run_id) -> ids read, err (nil at a normal end), how
-- the error came: "raised" or "returned".

local function drain(f, s, c, cl)
  local ids = {}
  local ok, err = pcall(function()
    for item in f, s, c, cl do
      ids[#ids + 1] = item.id
      if #ids > BOUND then error("the iteration does not end", 0) end
    end
  end)
  if ok then return ids end
  return ids, err, "raised"
end

local function walk(client, method, run_id)
  local ids, params = {}, { limit = PAGE }
  while #ids <= BOUND do
    local ok, page, err = pcall(client[method], client, run_id, params)
    if not ok then return ids, page, "raised" end
    if not page then return ids, err, "returned" end
    for _, item in ipairs(page.data) do ids[#ids + 1] = item.id end
    if not page.has_more then return ids end
    params = { limit = PAGE, starting_after = page.next_cursor }
  end
  return ids, "the walk does not end", "raised"
end

local TAG = "matrix-stream"

local WAYS = {
  { name = "call_results", list = "call",
    read = function(c, run) return drain(c:call_results(run)) end },
  { name = "agent_results", list = "agent",
    read = function(c, run) return drain(c:agent_results(run)) end },
  { name = "call_results_page", list = "call", walk = true,
    read = function(c, run) return walk(c, "call_results_page", run) end },
  { name = "agent_results_page", list = "agent", walk = true,
    read = function(c, run) return walk(c, "agent_results_page", run) end },
  { name = "many call_results", list = "call", many = true,
    read = function(c, run) return drain(c:many { { "call_results", run, tag = TAG } }) end },
  { name = "many agent_results", list = "agent", many = true,
    read = function(c, run) return drain(c:many { { "agent_results", run, tag = TAG } }) end },
}

---------------------------------------------------------------------------------------------
-- fault -> outcome. ok: every item, in order; retried: each page after the first failed once
-- and was asked for again. Otherwise the error: at = the page that fails (1: no item comes
-- before it; 2: one page's worth does) and its fields. message is the exact text (a function
-- of the cell's cursor and list for the ones that name them), message_like a pattern;
-- request_id = true: the fake API's "req_N", nil: none. client: options for the client;
-- on[transport] overrides fields for that transport. run: the run id (default: the row's
-- fault, else its name, with a fresh @tag).

local function cursor_msg(prefix, suffix)
  return function(cell) return prefix .. cell.cursor .. suffix end
end

local ROWS = {
  { "no fault", run = function() return "run-60" end, seed = 61, ok = true },
  { "fault-429", ok = true, retried = true },
  { "fault-503-once", ok = true, retried = true },
  { "fault-500-forever", at = 2, kind = "api", status = 500, code = "INTERNAL_SERVER_ERROR",
    message = "Internal server error", request_id = true, retryable = true, attempts = MAX_RETRIES + 1 },
  { "fault-reset", ok = true, retried = true },
  { "fault-truncated", at = 2, kind = "network", status = 200, request_id = true, retryable = true,
    attempts = MAX_RETRIES + 1, on = {
      curl = { curl = "PARTIAL_FILE", message_like = "^transfer closed with %d+ bytes remaining to read$" },
      ngx = { message = "the response was cut short" } } },
  { "fault-truncated-json", at = 2, kind = "decode", status = 200, request_id = true, retryable = false,
    attempts = 1, message_like = " at offset %d+$" },
  { "fault-html502", ok = true, retried = true },
  { "fault-no-cursor", at = 1, kind = "protocol", status = 200, request_id = true, retryable = false,
    attempts = 1, message = "has_more is true but there is no cursor" },
  { "fault-stuck-cursor", at = 2, kind = "protocol", status = 200, request_id = true, retryable = false,
    attempts = 1, message = cursor_msg("the cursor did not advance (", ")") },
  { "fault-repeat-id", at = 2, kind = "protocol", status = 200, request_id = true, retryable = false,
    attempts = 1, message = cursor_msg("item id ", " came twice in one iteration"),
    walk = "repeated" },   -- single pages keep no ids across calls: the walk sees the repeats
  { "fault-errors-200", at = 2, kind = "protocol", status = 200, code = "PARTIAL_FAILURE",
    request_id = true, retryable = false, attempts = 1,
    message = function(cell)
      return "a 200 answer carries errors: Some " .. cell.list_name .. " results could not be loaded"
    end },
  { "fault-slow", at = 2, client = { max_retries = 1 }, retryable = true, attempts = 2, on = {
      curl = { client = { timeout = SLOW_LIMIT }, kind = "timeout", curl = "OPERATION_TIMEDOUT",
        message_like = "^Operation timed out after %d+ milliseconds with 0 bytes received$" },
      ngx = { client = { location = SHORT }, kind = "http", status = 504,
        message = "HTTP 504" } } },   -- nginx's own answer
  { "fault-deep", at = 1, kind = "decode", status = 200, request_id = true, retryable = false,
    attempts = 1, message_like = "^nesting deeper than max_depth %(1000%) at offset %d+$" },
  { "fault-big", on = {
      curl = { at = 1, kind = "protocol", status = 200, request_id = true, retryable = false,
        attempts = 1, message = "the response body is larger than max_body (" .. MAX_BODY .. " bytes)" },
      ngx = { ok = true } } },   -- no max_body under nginx: the proxy takes the 3 MB page
  { "fault-not-envelope", at = 1, kind = "protocol", status = 200, request_id = true, retryable = false,
    attempts = 1, message = "the body is not the API's envelope (no data object)" },
  { "401 wrong key", run = function() return "run-60" end, key = WRONG_KEY, at = 1, kind = "api",
    status = 401, code = "AUTH_FAILURE", message = "Unauthorized", request_id = true,
    retryable = false, attempts = 1 },
  { "404 missing run", run = function() return transport.fresh("no-such-run") end, at = 1,
    kind = "api", status = 404, code = "EVAL_RUN_NOT_FOUND", message = "Eval run not found",
    request_id = true, retryable = false, attempts = 1 },
  -- deadline: a page's attempts and waits stay within it. A wait that would cross it ends the
  -- retries; an attempt is cut to the time left (libcurl; nginx's proxy_read_timeout here).
  { "fault-500-forever + deadline", fault = "fault-500-forever", at = 2,
    client = { deadline = 0.3, retry_base_delay = 1, retry_max_delay = 1 }, kind = "api",
    status = 500, code = "INTERNAL_SERVER_ERROR", message = "Internal server error", request_id = true,
    retryable = true, attempts = 1, deadline_exceeded = true },
  { "fault-slow + deadline", fault = "fault-slow", at = 2, client = { deadline = SLOW_LIMIT },
    retryable = true, attempts = 1, deadline_exceeded = true, on = {
      curl = { kind = "timeout", curl = "OPERATION_TIMEDOUT",
        message_like = "^Operation timed out after %d+ milliseconds with 0 bytes received$" },
      ngx = { client = { location = SHORT }, kind = "http", status = 504, message = "HTTP 504" } } },
  -- not a fault of the fake API: nothing listens where the client sends its requests
  { "connection refused", refused = true, run = function() return "run-60" end, at = 1,
    requests = 0, retryable = true, attempts = MAX_RETRIES + 1, on = {
      curl = { kind = "network", curl = "COULDNT_CONNECT",
        message_like = "^Failed to connect to 127%.0%.0%.1 port 9 after %d+ ms: " },
      ngx = { kind = "http", status = 502, message = "HTTP 502" } } },   -- nginx's own answer
}

-- The fields an error value may have (README "Errors"; run_id and tag from many).
local ERROR_FIELDS = { kind = true, status = true, code = true, message = true, request_id = true,
  retryable = true, attempts = true, curl = true, starting_after = true, ending_before = true,
  run_id = true, tag = true, deadline_exceeded = true }

---------------------------------------------------------------------------------------------
-- Leak checks

local KEY_PIECES = {}
for _, key in ipairs { KEY, WRONG_KEY } do
  for i = 1, #key - 9 do KEY_PIECES[#KEY_PIECES + 1] = key:sub(i, i + 9) end
end

-- the first piece of a key that s holds, or nil
local function leak_in(s)
  for _, piece in ipairs(KEY_PIECES) do
    if s:find(piece, 1, true) then return piece end
  end
end

-- every string in v, its keys and values, its tables' (cycles are followed once)
local function strings_of(v, out, seen)
  local t = type(v)
  if t == "string" then out[#out + 1] = v
  elseif t == "number" or t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      strings_of(k, out, seen)
      strings_of(x, out, seen)
    end
  end
  return out
end

local function read_file(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. path)
  local s = f:read("*a")
  f:close()
  return s
end

---------------------------------------------------------------------------------------------

-- the row's outcome under this transport (client options: the row's, then the transport's)
local function merged(row)
  local over = row.on and row.on[TRANSPORT] or {}
  local e = { client = {} }
  for _, t in ipairs { row, over } do
    for k, v in pairs(t) do if k ~= "client" then e[k] = v end end
    for k, v in pairs(t.client or {}) do e.client[k] = v end
  end
  return e
end

describe("fault matrix", function()
  local api, logs

  setup(function()
    math.randomseed(os.time())
    api = fakeapi.start()
    logs = { api.dir .. "/error.log" }
    if IN_NGINX then logs[2] = ngx.config.prefix():match("^(.-)/*$") .. "/error.log" end   -- the app's
  end)
  teardown(function() if api then api.stop() end end)

  local function new_client(e, prefetch)
    local o = { api_key = e.key or KEY, page_size = PAGE, prefetch = prefetch,
      max_retries = MAX_RETRIES, retry_base_delay = 0.01, retry_max_delay = 0.05,
      retry_after_max = 0.01 }   -- fault-429's Retry-After: 1, cut short
    if not IN_NGINX then o.timeout, o.max_body = 10, MAX_BODY end
    for k, v in pairs(e.client) do o[k] = v end
    transport.options(o, api)
    if IN_NGINX then
      o.location = e.client.location or o.location
      package.loaded.blandeval_test_upstream = e.refused and REFUSED or api.base_url
    elseif e.refused then
      o.base_url = REFUSED
    end
    return blandeval.new(o)
  end

  it("has a row for every fault of the fake API", function()
    local handler = read_file(assert(package.searchpath("fakeapi.handler", package.path)))
    local block = assert(handler:match("local FAULTS = {}.-%[%[(.-)%]%]"), "FAULTS in handler.lua")
    local rows = {}
    for _, row in ipairs(ROWS) do rows[row[1]] = true end
    local n = 0
    for name in block:gmatch("%S+") do
      n = n + 1
      assert.is_true(rows[name], name .. " has no row")
    end
    assert.are.equal(15, n)
  end)

  for _, row in ipairs(ROWS) do
    local e = merged(row)
    for _, prefetch in ipairs { true, false } do
      for _, way in ipairs(WAYS) do
        local name = ("%s × %s × prefetch %s × %s"):format(row[1], TRANSPORT, prefetch and "on" or "off",
          way.name)
        it(name, function()
          local run = row.run and row.run() or transport.fresh(row.fault or row[1])
          local list = lists_of(e.seed or name_seed(row.fault or row[1]))[way.list]
          local before = row.run and api.stats(run).requests or 0
          local c = new_client(e, prefetch)
          local t0 = core.monotonic()
          local ids, err, how = way.read(c, run)
          local elapsed = core.monotonic() - t0
          c:close()
          local requests = api.stats(run).requests - before
          assert.is_true(elapsed < 5, "took " .. elapsed .. " s")

          if e.ok then
            assert.is_nil(err, "must read the whole run: " .. tostring(err))
            assert.are.same(list, ids, "every item once, in order")
            local pages = pages_of(#list)
            assert.are.equal(e.retried and 2 * pages - 1 or pages, requests, "requests")
          elseif way.walk and e.walk == "repeated" then
            assert.is_nil(err, "single pages pass the server's pages on: " .. tostring(err))
            local want, pages = repeated_walk(list)
            assert.are.same(want, ids)
            assert.are.equal(pages, requests, "requests")
          else
            local before_fault = (e.at - 1) * PAGE
            assert.are.equal(way.walk and "returned" or "raised", how, "how the error came: " .. tostring(err))
            assert.are.same(slice(list, 1, before_fault), ids, "the items before the faulty page, no more")
            assert.are.equal(e.requests or before_fault / PAGE + e.attempts, requests, "requests")

            assert.is_table(err, "an error value: " .. tostring(err))
            local cell = { cursor = e.at > 1 and list[before_fault] or nil, list_name = way.list }
            for k in pairs(err) do assert.is_true(ERROR_FIELDS[k], "unknown field " .. tostring(k)) end
            assert.are.equal(e.kind, err.kind, "kind")
            assert.are.equal(e.status, err.status, "status")
            assert.are.equal(e.code, err.code, "code")
            local message = type(e.message) == "function" and e.message(cell) or e.message
            if message then assert.are.equal(message, err.message, "message") end
            if e.message_like then assert.matches(e.message_like, err.message) end
            assert.is_true(message ~= nil or e.message_like ~= nil, "the row says what the message is")
            if e.request_id then assert.matches("^req_%d+$", err.request_id)
            else assert.is_nil(err.request_id, "request_id") end
            assert.are.equal(e.retryable, err.retryable, "retryable")
            assert.are.equal(e.attempts, err.attempts, "attempts")
            assert.are.equal(e.curl, err.curl, "curl")
            assert.are.equal(e.deadline_exceeded, err.deadline_exceeded, "deadline_exceeded")
            -- where to resume: iterators and many say; a single page's caller has its cursor
            assert.are.equal(not way.walk and cell.cursor or nil, err.starting_after, "starting_after")
            assert.is_nil(err.ending_before, "ending_before")
            assert.are.equal(way.many and run or nil, err.run_id, "run_id")
            assert.are.equal(way.many and TAG or nil, err.tag, "tag")
            local text = tostring(err)
            assert.are.equal(1, text:find("blandeval: " .. err.kind .. " error", 1, true), text)
            assert.truthy(text:find(err.message, 1, true), text)
            assert.are.equal(e.attempts > 1, text:find(" after " .. e.attempts .. " attempts", 1, true) ~= nil, text)
          end

          for _, s in ipairs(strings_of(err, { tostring(err) }, {})) do
            assert.is_nil(leak_in(s), "the key in the error: " .. s)
          end
          for _, path in ipairs(logs) do
            local piece = leak_in(read_file(path))
            assert.is_nil(piece, "the key in " .. path .. ": " .. tostring(piece))
          end
        end)
      end
    end
  end
end)
