-- The client's errors (README "Errors", "Retries"): usage errors raised at once, error values
-- for runtime failures, every fault run of the fake Bland API, retries, backoff, Retry-After
-- and deadlines. Real HTTP against spec/support/fakeapi; Lua 5.4 and LuaJIT.
local blandeval = require "blandeval"
local fakeapi = require "fakeapi"
local transport = require "transport"

local unpack = table.unpack or unpack

local api

local function new_client(opts) return transport.client(api, opts) end

local counter = 0
local function uniq(prefix)              -- a fault run with its own state and stats
  counter = counter + 1
  return prefix .. "@e" .. counter
end
local function other_run()
  counter = counter + 1
  return "run-usage-" .. counter
end

-- Wall clock in seconds (busted depends on luasystem; luasocket or date(1) otherwise).
local now
do
  local ok, system = pcall(require, "system")
  if ok and system.monotime then now = system.monotime
  elseif ok and system.gettime then now = system.gettime
  else
    local ok2, socket = pcall(require, "socket")
    if ok2 then now = socket.gettime
    else
      now = function()
        local p = assert(io.popen("date +%s.%N"))
        local s = p:read("*a")
        p:close()
        return tonumber(s)
      end
    end
  end
end

local ids_of = transport.ids_of

-- Runs a whole iteration; -> ok, items (ids) read before the end or the error, err
local function iterate(f, s, c)
  local ids = {}
  local ok, err = pcall(function()
    for item in f, s, c do ids[#ids + 1] = item.id end
  end)
  return ok, ids, err
end

-- The 60 ids of a fault run, read as one page of 100: the faults act on requests with
-- starting_after only, so this one request is clean.
local function clean_ids(run)
  local page = assert(new_client():call_results_page(run, { limit = 100 }))
  assert.are.equal(60, #page.data)
  return ids_of(page.data)
end

local function check_error_value(err, what)
  assert.is_table(err, what .. ": the error is a table, got " .. type(err) .. " " .. tostring(err))
  local mt = getmetatable(err)
  assert.is_table(mt, what .. ": the error has a metatable")
  assert.is_function(mt.__tostring, what .. ": the error has __tostring")
  assert.is_string(err.kind, what .. ": kind")
  assert.is_string(err.message, what .. ": message")
  assert.is_boolean(err.retryable, what .. ": retryable")
  assert.is_number(err.attempts, what .. ": attempts")
  if math.type then
    assert.are.equal("integer", math.type(err.attempts), what .. ": attempts is an integer")
    if err.status then assert.are.equal("integer", math.type(err.status), what .. ": status is an integer") end
  end
  assert.matches("^blandeval: " .. err.kind .. " error", tostring(err))
end

---------------------------------------------------------------------------------------------

describe("blandeval client errors", function()
  setup(function() api = fakeapi.start() end)
  teardown(function() if api then api.stop() end end)

  describe("usage errors", function()
    local client
    before_each(function() client = new_client() end)

    -- Calls method with args in a non-tail call, so the error's position is this file.
    local function raises(method, ...)
      local args = { n = select("#", ...), ... }
      local ok, err = pcall(function()
        local r = client[method](client, unpack(args, 1, args.n))
        return r
      end)
      return ok, err
    end

    local PARAM_CASES = {
      { { limit = 0 }, "limit" }, { { limit = 101 }, "limit" }, { { limit = 1.5 }, "limit" },
      { { limit = "x" }, "limit" }, { { limit = -1 }, "limit" }, { { limit = 0 / 0 }, "limit" },
      { { limit = math.huge }, "limit" }, { { limit = "10" }, "limit" },
      { { starting_after = "a", ending_before = "b" }, "starting_after and ending_before" },
      { { bogus = 1 }, "unknown parameter 'bogus'" },
      { { include_agent_results = "true" }, "include_agent_results" },
      { { include_agent_results = 1 }, "include_agent_results" },
      { { starting_after = "" }, "starting_after" }, { { starting_after = 5 }, "starting_after" },
      { { ending_before = "" }, "ending_before" }, { { ending_before = true }, "ending_before" },
    }

    for _, method in ipairs { "call_results", "failed_call_results", "call_results_page" } do
      it(method .. " raises at once on a bad parameter, naming it, and sends nothing", function()
        local run = other_run()
        for _, case in ipairs(PARAM_CASES) do
          local ok, err = raises(method, run, case[1])
          local what = method .. " with " .. case[2]
          assert.is_false(ok, what .. " must raise")
          assert.is_string(err, what .. ": a usage error is a string")
          assert.truthy(err:find("bad argument #2 to '" .. method .. "'", 1, true), what .. ": " .. err)
          assert.truthy(err:find(case[2], 1, true), what .. " must name it: " .. err)
          assert.matches("client_errors_spec%.lua:%d+: ", err, nil, nil, what .. ": the position is the caller's")
        end
        local ok, err = raises(method, run, "limit=5")
        assert.is_false(ok)
        assert.truthy(err:find("params must be a table", 1, true), err)
        assert.are.equal(0, api.stats(run).requests, "no request for a usage error")
      end)
    end

    it("every method raises at once on an empty or non-string run id", function()
      for _, method in ipairs { "call_results", "failed_call_results", "agent_snapshots",
                                "call_results_page", "agent_snapshots_page" } do
        for _, bad in ipairs { "", 5, true, {} } do
          local ok, err = raises(method, bad)
          local what = method .. "(" .. type(bad) .. " " .. tostring(bad) .. ")"
          assert.is_false(ok, what .. " must raise")
          assert.truthy(err:find("bad argument #1 to '" .. method .. "'", 1, true), what .. ": " .. err)
          assert.truthy(err:find("run_id", 1, true), what .. " names run_id: " .. err)
          assert.matches("client_errors_spec%.lua:%d+: ", err, nil, nil, what)
        end
        local ok, err = raises(method)
        assert.is_false(ok, method .. "() without a run id must raise")
        assert.truthy(err:find("run_id", 1, true), err)
      end
    end)

    -- option -> bad values (each must be refused with an error naming the option)
    local BAD_OPTIONS = {
      api_key = { 5, true, {} },
      base_url = { 5, "", "ftp://127.0.0.1/", "127.0.0.1:80", "http://127.0.0.1:1/a b", "http://127.0.0.1/?x" },
      timeout = { 0, -1, "1", 0 / 0, 1e9 },
      connect_timeout = { 0, -1, "10", 0 / 0 },
      deadline = { 0, -5, "1" },
      max_retries = { -1, 1.5, 101, "2" },
      retry_base_delay = { -1, "0.5", 0 / 0 },
      retry_max_delay = { -1, "8" },
      retry_after_max = { -1, "60" },
      page_size = { 0, 101, 2.5, "25" },
      max_body = { 0, 1.5, "100" },
      keep_nulls = { "yes", 1 },
      allow_insecure = { "true", 0 },
      user_agent = { 5, false },
      cainfo = { "", 5 },
      capath = { "", false },
    }

    it("blandeval.new refuses each option's wrong type or range, naming the option", function()
      for name, values in pairs(BAD_OPTIONS) do
        for _, v in ipairs(values) do
          local opts = { api_key = "test-key", base_url = api.base_url }
          opts[name] = v
          local ok, err = pcall(function()
            local c = blandeval.new(opts)
            return c
          end)
          local what = "option " .. name .. " = " .. tostring(v)
          assert.is_false(ok, what .. " must be refused")
          assert.is_string(err, what)
          assert.truthy(err:find("bad argument #1 to 'new'", 1, true), what .. ": " .. err)
          assert.truthy(err:find(name, 1, true), what .. " must be named: " .. err)
          assert.matches("client_errors_spec%.lua:%d+: ", err, nil, nil, what .. ": the position is the caller's")
        end
      end
    end)

    it("blandeval.new refuses unknown options and a non-table argument", function()
      local ok, err = pcall(blandeval.new, { api_key = "test-key", base_url = api.base_url, timout = 5 })
      assert.is_false(ok)
      assert.truthy(err:find("unknown option 'timout'", 1, true), err)
      ok, err = pcall(blandeval.new, "test-key")
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #1 to 'new'", 1, true), err)
      assert.truthy(err:find("table expected", 1, true), err)
    end)

    it("blandeval.new accepts every option at the edges of its range #curl", function()
      local c = blandeval.new {
        api_key = "test-key", base_url = api.base_url, timeout = 0.001, connect_timeout = 86400,
        deadline = 0.001, max_retries = 100, retry_base_delay = 0, retry_max_delay = 0,
        retry_after_max = 0, page_size = 100, max_body = 1, keep_nulls = false,
        allow_insecure = false, user_agent = "x", cainfo = api.cert, capath = api.dir,
      }
      assert.is_not_nil(c)
      c:close()
      c = blandeval.new { api_key = "test-key", base_url = api.base_url, max_retries = 0, page_size = 1 }
      assert(c:call_results_page("run-5", { limit = 1 }))
    end)
  end)

  describe("API errors", function()
    it("404 for an unknown run: api kind, EVAL_RUN_NOT_FOUND, request id, not retried", function()
      local run = "nope-" .. tostring(os.time())
      local page, err = new_client({ max_retries = 3 }):call_results_page(run)
      assert.is_nil(page)
      check_error_value(err, "404")
      assert.are.equal("api", err.kind)
      assert.are.equal(404, err.status)
      assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
      assert.are.equal("Eval run not found", err.message)
      assert.matches("^req_%d+$", err.request_id)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.is_nil(err.curl)
      assert.are.equal(1, api.stats(run).requests, "a 404 is not retried")
      assert.are.equal("blandeval: api error, HTTP 404 EVAL_RUN_NOT_FOUND: Eval run not found [request "
        .. err.request_id .. "]", tostring(err))
    end)

    it("the iterators raise the error value (a table), catchable with pcall", function()
      local client = new_client()
      for _, method in ipairs { "call_results", "failed_call_results", "agent_snapshots" } do
        local ok, ids, err = iterate(client[method](client, "nope"))
        assert.is_false(ok, method .. " over an unknown run must raise")
        assert.are.equal(0, #ids)
        check_error_value(err, method)
        assert.are.equal(404, err.status, method)
        assert.are.equal("EVAL_RUN_NOT_FOUND", err.code, method)
      end
    end)

    it("transport 'ngx' outside nginx is refused at new()", function()
      if ngx then return end
      local ok, err = pcall(blandeval.new, { api_key = "k", transport = "ngx" })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("only inside nginx", 1, true), tostring(err))
    end)

    it("401 for a wrong key: api kind, AUTH_FAILURE, one request only", function()
      local run = "run-auth-" .. tostring(os.time())
      local c = new_client { api_key = "wrong-key", max_retries = 5 }
      local page, err = c:call_results_page(run)
      assert.is_nil(page)
      check_error_value(err, "401")
      assert.are.equal("api", err.kind)
      assert.are.equal(401, err.status)
      assert.are.equal("AUTH_FAILURE", err.code)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      local stats = api.stats(run)
      assert.are.equal(1, stats.requests, "a 401 is not retried")
      assert.are.same({ "wrong-key" }, stats.auth)
    end)

    it("400 for an unknown cursor: api kind, INVALID_CURSOR, not retried", function()
      local run = "run-cursor-" .. tostring(os.time())
      local page, err = new_client({ max_retries = 3 }):call_results_page(run, { starting_after = "nope" })
      assert.is_nil(page)
      check_error_value(err, "400")
      assert.are.equal("api", err.kind)
      assert.are.equal(400, err.status)
      assert.are.equal("INVALID_CURSOR", err.code)
      assert.are.equal("Unknown cursor: nope", err.message)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, api.stats(run).requests)
      assert.matches("^blandeval: api error, HTTP 400 INVALID_CURSOR: Unknown cursor: nope %[request req_%d+%]$",
        tostring(err))
    end)

    it("an iterator's error carries the cursor of the page it could not get; passing it back resumes", function()
      local run = uniq("fault-503-once")
      local want = clean_ids(run)
      local c = new_client({ page_size = 25, max_retries = 0 })
      local got, params, rounds, cursors = {}, nil, 0, {}
      repeat
        rounds = rounds + 1
        local ok, ids, err = iterate(c:call_results(run, params))
        for _, id in ipairs(ids) do got[#got + 1] = id end
        if not ok then
          assert.are.equal(503, err.status, tostring(err))
          assert.is_string(err.starting_after, "err.starting_after: " .. tostring(err))
          assert.is_nil(err.ending_before)
          cursors[#cursors + 1] = err.starting_after
          params = { starting_after = err.starting_after }
        end
      until ok or rounds > 5
      assert.are.equal(3, rounds, "page 2 and page 3 each fail once")
      assert.are.same({ want[25], want[50] }, cursors, "the cursors of the pages that failed")
      assert.are.same(want, got, "the resumed pieces make the run, nothing skipped or repeated")
    end)

    it("an error on the first page carries the cursor it was asked with, if any", function()
      local c = new_client()
      local _, _, err = iterate(c:call_results("nope"))
      assert.is_nil(err.starting_after)
      assert.is_nil(err.ending_before)
      _, _, err = iterate(c:call_results("nope", { starting_after = "abc" }))
      assert.are.equal("abc", err.starting_after)
      _, _, err = iterate(c:call_results("nope", { ending_before = "xyz" }))
      assert.are.equal("xyz", err.ending_before)
      assert.is_nil(err.starting_after)
    end)

    it("an iteration that failed stays failed: the next step raises the error again, without a request", function()
      local run = uniq("fault-500-forever")
      local c = new_client({ page_size = 25, max_retries = 0 })
      local f, s = c:call_results(run)
      local ok, _, err = iterate(f, s)
      assert.is_false(ok)
      local before = api.stats(run).requests
      local ok2, err2 = pcall(f, s)
      assert.is_false(ok2, "a step after the failure must not look like the end")
      assert.are.equal(err, err2)
      assert.are.equal(before, api.stats(run).requests)
    end)
  end)

  describe("fault runs", function()
    it("fault-429: waits the Retry-After second, retries, and reads every item", function()
      local run = uniq("fault-429")
      local want = clean_ids(run)
      api.reset()
      local t0 = now()
      local ok, ids, err = iterate(new_client({ page_size = 50 }):call_results(run))
      local elapsed = now() - t0
      assert.is_true(ok, tostring(err))
      assert.are.same(want, ids)
      assert.are.equal(3, api.stats(run).requests, "page 1, the 429, the retry")
      assert.is_true(elapsed >= 0.95, "Retry-After: 1 was honoured (took " .. elapsed .. " s)")
      assert.is_true(elapsed < 3, "took " .. elapsed .. " s")
    end)

    it("fault-429: retry_after_max caps the Retry-After wait", function()
      local run = uniq("fault-429")
      local t0 = now()
      local ok, ids, err = iterate(new_client({ page_size = 50, retry_after_max = 0 }):call_results(run))
      local elapsed = now() - t0
      assert.is_true(ok, tostring(err))
      assert.are.equal(60, #ids)
      assert.are.equal(3, api.stats(run).requests)
      assert.is_true(elapsed < 0.7, "the 1 s Retry-After was capped to 0 (took " .. elapsed .. " s)")
    end)

    it("fault-429 with max_retries = 0: api error 429 RATE_LIMITED, retryable, 1 attempt", function()
      local run = uniq("fault-429")
      local ok, ids, err = iterate(new_client({ page_size = 50, max_retries = 0 }):call_results(run))
      assert.is_false(ok)
      assert.are.equal(50, #ids, "page 1 was read before the failure")
      check_error_value(err, "429")
      assert.are.equal("api", err.kind)
      assert.are.equal(429, err.status)
      assert.are.equal("RATE_LIMITED", err.code)
      assert.is_true(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.are.equal(2, api.stats(run).requests)
    end)

    it("fault-503-once: retried, every item exactly once", function()
      local run = uniq("fault-503-once")
      local want = clean_ids(run)
      api.reset()
      local ok, ids, err = iterate(new_client({ page_size = 25 }):call_results(run))
      assert.is_true(ok, tostring(err))
      assert.are.same(want, ids, "no item skipped or repeated across the retried pages")
      local stats = api.stats(run)
      assert.are.equal(5, stats.requests, "3 pages + 2 retries")
      assert.are.equal(stats.paths[2], stats.paths[3], "a retry asks with the same cursor")
      assert.are.equal(stats.paths[4], stats.paths[5], "a retry asks with the same cursor")
    end)

    it("fault-500-forever: attempts = max_retries + 1, then an api error", function()
      for _, retries in ipairs { 0, 1, 3 } do
        local run = uniq("fault-500-forever")
        local ok, ids, err = iterate(new_client({ page_size = 25, max_retries = retries }):call_results(run))
        assert.is_false(ok)
        assert.are.equal(25, #ids)
        check_error_value(err, "500")
        assert.are.equal("api", err.kind)
        assert.are.equal(500, err.status)
        assert.are.equal("INTERNAL_SERVER_ERROR", err.code)
        assert.is_true(err.retryable)
        assert.are.equal(retries + 1, err.attempts, "max_retries = " .. retries)
        assert.are.equal(retries + 2, api.stats(run).requests, "page 1 + the attempts at page 2")
        if retries > 0 then
          assert.matches(" after " .. (retries + 1) .. " attempts$", tostring(err))
        else
          assert.is_nil(tostring(err):find("attempts", 1, true), tostring(err))
        end
      end
    end)

    it("fault-reset: a connection cut mid-body is retried on a new connection", function()
      local run = uniq("fault-reset")
      local want = clean_ids(run)
      api.reset()
      local ok, ids, err = iterate(new_client({ page_size = 25 }):call_results(run))
      assert.is_true(ok, tostring(err))
      assert.are.same(want, ids, "no item skipped or repeated")
      local stats = api.stats(run)
      assert.are.equal(5, stats.requests)
      if not ngx then   -- nginx's upstream pool decides its connections
        assert.are.equal(3, stats.connections, "each cut costs a new connection")
      end
    end)

    it("fault-reset with max_retries = 0: network error PARTIAL_FILE, retryable", function()
      local run = uniq("fault-reset")
      local ok, ids, err = iterate(new_client({ page_size = 25, max_retries = 0 }):call_results(run))
      assert.is_false(ok)
      assert.are.equal(25, #ids)
      check_error_value(err, "reset")
      assert.are.equal("network", err.kind)
      if not ngx then assert.are.equal("PARTIAL_FILE", err.curl) end   -- libcurl's own name
      assert.is_true(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.matches("^req_%d+$", err.request_id)
    end)

    it("fault-truncated: a short body every time: network error after max_retries + 1 attempts", function()
      local run = uniq("fault-truncated")
      local ok, ids, err = iterate(new_client({ page_size = 25, max_retries = 2 }):call_results(run))
      assert.is_false(ok)
      assert.are.equal(25, #ids)
      check_error_value(err, "truncated")
      assert.are.equal("network", err.kind)
      if not ngx then   -- libcurl's own names
        assert.is_true(err.curl == "PARTIAL_FILE" or err.curl == "RECV_ERROR", "curl: " .. tostring(err.curl))
        assert.truthy(tostring(err):find(err.curl, 1, true), tostring(err))
      end
      assert.is_true(err.retryable)
      assert.are.equal(3, err.attempts)
      assert.are.equal(4, api.stats(run).requests)
    end)

    it("fault-truncated-json: decode error with the offset, not retried", function()
      local run = uniq("fault-truncated-json")
      local ok, ids, err = iterate(new_client({ page_size = 25, max_retries = 3 }):call_results(run))
      assert.is_false(ok)
      assert.are.equal(25, #ids)
      check_error_value(err, "truncated-json")
      assert.are.equal("decode", err.kind)
      assert.are.equal(200, err.status)
      assert.matches("at offset %d+", err.message)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.are.equal(2, api.stats(run).requests, "a body that is not JSON is not retried")
    end)

    it("fault-html502: an HTML 502 is retried, then the iteration completes", function()
      local run = uniq("fault-html502")
      local want = clean_ids(run)
      api.reset()
      local ok, ids, err = iterate(new_client({ page_size = 25 }):call_results(run))
      assert.is_true(ok, tostring(err))
      assert.are.same(want, ids)
      assert.are.equal(5, api.stats(run).requests)
    end)

    it("fault-html502 with max_retries = 0: http error 502 (not api), retryable", function()
      local run = uniq("fault-html502")
      local ok, ids, err = iterate(new_client({ page_size = 25, max_retries = 0 }):call_results(run))
      assert.is_false(ok)
      assert.are.equal(25, #ids)
      check_error_value(err, "html502")
      assert.are.equal("http", err.kind)
      assert.are.equal(502, err.status)
      assert.is_nil(err.code)
      assert.matches("HTML", err.message)
      assert.is_true(err.retryable)
      assert.are.equal(1, err.attempts)
    end)

    local PROTOCOL = {
      { "fault-no-cursor", 0, 1, "cursor" },
      { "fault-stuck-cursor", 25, 2, "did not advance" },
      { "fault-repeat-id", 25, 2, "twice" },
      { "fault-not-envelope", 0, 1, "envelope" },
    }
    for _, case in ipairs(PROTOCOL) do
      local name, read, requests, words = case[1], case[2], case[3], case[4]
      it(name .. ": protocol error, never an endless loop or a silent end, not retried", function()
        local run = uniq(name)
        local ok, ids, err = iterate(new_client({ page_size = 25, max_retries = 3 }):call_results(run))
        assert.is_false(ok, name .. " must fail")
        assert.are.equal(read, #ids, "items read before the failure")
        check_error_value(err, name)
        assert.are.equal("protocol", err.kind)
        assert.are.equal(200, err.status)
        assert.truthy(err.message:find(words, 1, true), err.message)
        assert.is_false(err.retryable)
        assert.are.equal(1, err.attempts)
        assert.matches("^req_%d+$", err.request_id)
        assert.are.equal(requests, api.stats(run).requests)
      end)
    end

    it("fault-no-cursor with keep_nulls = true: a null next_cursor is no cursor either", function()
      local run = uniq("fault-no-cursor")
      local ok, ids, err = iterate(new_client({ page_size = 25, keep_nulls = true }):call_results(run))
      assert.is_false(ok, "must fail")
      assert.are.equal(0, #ids)
      assert.are.equal("protocol", err.kind)
      assert.truthy(err.message:find("cursor", 1, true), err.message)
      assert.are.equal(1, api.stats(run).requests)
    end)

    it("fault-errors-200: a 2xx answer with errors is a protocol error with code PARTIAL_FAILURE", function()
      local run = uniq("fault-errors-200")
      local ok, ids, err = iterate(new_client({ page_size = 25, max_retries = 3 }):call_results(run))
      assert.is_false(ok)
      assert.are.equal(25, #ids, "the items of the page with errors are not given")
      check_error_value(err, "errors-200")
      assert.are.equal("protocol", err.kind)
      assert.are.equal(200, err.status)
      assert.are.equal("PARTIAL_FAILURE", err.code)
      assert.truthy(err.message:find("Some call results could not be loaded", 1, true), err.message)
      assert.is_false(err.retryable)
      assert.are.equal(2, api.stats(run).requests)
    end)

    it("fault-deep: nesting beyond max_depth is a decode error", function()
      local run = uniq("fault-deep")
      local page, err = new_client({ max_retries = 3 }):call_results_page(run)
      assert.is_nil(page)
      check_error_value(err, "deep")
      assert.are.equal("decode", err.kind)
      assert.are.equal(200, err.status)
      assert.truthy(err.message:find("max_depth", 1, true), err.message)
      assert.matches("at offset %d+", err.message)
      assert.is_false(err.retryable)
      assert.are.equal(1, api.stats(run).requests)
    end)

    it("fault-big: a body over max_body is a protocol error naming max_body; the client recovers #curl", function()
      local run = uniq("fault-big")
      local c = new_client({ max_body = 1000000, max_retries = 3 })
      local page, err = c:call_results_page(run)
      assert.is_nil(page)
      check_error_value(err, "big")
      assert.are.equal("protocol", err.kind)
      assert.truthy(err.message:find("max_body", 1, true), err.message)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, api.stats(run).requests)
      assert(c:call_results_page("run-5"), "the client works after an aborted transfer")
    end)

    it("fault-big: without the cap the 3 MB page is read", function()
      local run = uniq("fault-big")
      local page = assert(new_client():call_results_page(run, { limit = 25 }))
      assert.are.equal(25, #page.data)
      assert.is_true(#page.data[1].call_display_name > 100000)
    end)

    it("fault-slow with timeout = 1: timeout error OPERATION_TIMEDOUT after about 1 s #curl", function()
      local run = uniq("fault-slow")
      local c = new_client({ page_size = 25, timeout = 1, max_retries = 0 })
      local t0 = now()
      local ok, ids, err = iterate(c:call_results(run))
      local elapsed = now() - t0
      assert.is_false(ok)
      assert.are.equal(25, #ids)
      check_error_value(err, "slow")
      assert.are.equal("timeout", err.kind)
      assert.are.equal("OPERATION_TIMEDOUT", err.curl)
      assert.is_true(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.is_true(elapsed >= 0.9 and elapsed < 2.5, "took " .. elapsed .. " s")
      assert(c:call_results_page("run-5"), "the client works after a timeout")
    end)

    it("fault-slow with deadline = 1.5: the page's attempts and waits stay within it #curl", function()
      local run = uniq("fault-slow")
      local c = new_client({ page_size = 25, timeout = 1, max_retries = 5, deadline = 1.5 })
      local first = assert(c:call_results_page(run, { limit = 25 }))
      local t0 = now()
      local page, err = c:call_results_page(run, { limit = 25, starting_after = first.next_cursor })
      local elapsed = now() - t0
      assert.is_nil(page)
      check_error_value(err, "deadline")
      assert.are.equal("timeout", err.kind)
      assert.is_true(elapsed < 2.1, "the deadline bounds the page: took " .. elapsed .. " s")
      assert.is_true(err.deadline_exceeded == true or err.attempts <= 2,
        "deadline_exceeded = " .. tostring(err.deadline_exceeded) .. ", attempts = " .. tostring(err.attempts))
      assert.is_true(err.attempts <= 2, "attempts: " .. tostring(err.attempts))
      assert.is_true(api.stats(run).requests <= 3)
    end)
  end)

  describe("retries", function()
    it("connection refused: network COULDNT_CONNECT, retried max_retries times #curl", function()
      local port
      local ok, socket = pcall(require, "socket")
      if ok then                               -- a port that was just free
        local srv = assert(socket.bind("127.0.0.1", 0))
        port = select(2, srv:getsockname())
        srv:close()
      else
        port = 1
      end
      local c = blandeval.new { api_key = "test-key", base_url = "http://127.0.0.1:" .. port,
                                max_retries = 2, retry_base_delay = 0.01, retry_max_delay = 0.05 }
      local page, err = c:call_results_page("run-5")
      assert.is_nil(page)
      check_error_value(err, "refused")
      assert.are.equal("network", err.kind)
      assert.are.equal("COULDNT_CONNECT", err.curl)
      assert.is_nil(err.status)
      assert.is_true(err.retryable)
      assert.are.equal(3, err.attempts)
      assert.matches("^blandeval: network error, COULDNT_CONNECT: .* after 3 attempts$", tostring(err))
      c = blandeval.new { api_key = "test-key", base_url = "http://127.0.0.1:" .. port, max_retries = 0 }
      page, err = c:call_results_page("run-5")
      assert.are.equal(1, err.attempts)
    end)

    it("waits retry_base_delay * 2^(n-1), capped by retry_max_delay, with jitter in [0.5, 1]", function()
      local run = uniq("fault-500-forever")
      -- waits: [0.1, 0.2] then min(0.4, 0.3) -> [0.15, 0.3]; 0.25 s .. 0.5 s in all
      local c = new_client({ page_size = 25, max_retries = 2, retry_base_delay = 0.2, retry_max_delay = 0.3 })
      local first = assert(c:call_results_page(run, { limit = 25 }))
      local t0 = now()
      local page, err = c:call_results_page(run, { limit = 25, starting_after = first.next_cursor })
      local elapsed = now() - t0
      assert.is_nil(page)
      assert.are.equal(3, err.attempts)
      assert.is_true(elapsed >= 0.24, "two backoff waits of at least 0.1 and 0.15 s: took " .. elapsed)
      assert.is_true(elapsed < 1.0, "the waits are capped: took " .. elapsed)
      -- no delay at all
      run = uniq("fault-500-forever")
      c = new_client({ page_size = 25, max_retries = 4, retry_base_delay = 0, retry_max_delay = 0 })
      first = assert(c:call_results_page(run, { limit = 25 }))
      t0 = now()
      page, err = c:call_results_page(run, { limit = 25, starting_after = first.next_cursor })
      assert.are.equal(5, err.attempts)
      assert.is_true(now() - t0 < 0.5, "retry_base_delay = 0 retries at once")
    end)

    it("a wait that would cross the deadline ends the retries with deadline_exceeded", function()
      local run = uniq("fault-500-forever")
      local c = new_client({ page_size = 25, max_retries = 5, retry_base_delay = 2, retry_max_delay = 2,
                             deadline = 0.5 })
      local first = assert(c:call_results_page(run, { limit = 25 }))
      local t0 = now()
      local page, err = c:call_results_page(run, { limit = 25, starting_after = first.next_cursor })
      local elapsed = now() - t0
      assert.is_nil(page)
      assert.are.equal(500, err.status)
      assert.is_true(err.deadline_exceeded, "deadline_exceeded")
      assert.are.equal(1, err.attempts)
      assert.is_true(elapsed < 0.4, "it does not sleep into the deadline: took " .. elapsed)
      assert.are.equal(2, api.stats(run).requests)
    end)

    it("a Retry-After beyond the deadline ends the retries too", function()
      local run = uniq("fault-429")
      local c = new_client({ page_size = 25, deadline = 0.5 })
      local t0 = now()
      local ok, ids, err = iterate(c:call_results(run))
      assert.is_false(ok)
      assert.are.equal(25, #ids)
      assert.are.equal(429, err.status)
      assert.is_true(err.deadline_exceeded)
      assert.is_true(now() - t0 < 0.8)
    end)

    it("never skips or repeats an item over retried pages (fault-503-once, fault-reset, fault-html502)", function()
      for _, name in ipairs { "fault-503-once", "fault-reset", "fault-html502" } do
        local run = uniq(name)
        local want = clean_ids(run)
        local ok, ids, err = iterate(new_client({ page_size = 10 }):call_results(run))
        assert.is_true(ok, name .. ": " .. tostring(err))
        assert.are.equal(60, #ids, name)
        local seen = {}
        for _, id in ipairs(ids) do
          assert.is_nil(seen[id], name .. ": " .. id .. " twice")
          seen[id] = true
        end
        assert.are.same(want, ids, name .. ": the run's items in order")
      end
    end)
  end)
end)
