-- The local fake Bland Evals API (spec/support/fakeapi*), checked over real HTTP with the curl
-- CLI, so that client specs can trust what it does.
local cjson = require "cjson"
local fakeapi = require "fakeapi"

local shell = require "shell"
local q, sh = shell.q, shell.sh

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local api

-- One curl request. opts: auth (header value; false for none), flags (extra curl arguments).
-- -> { status, exit (curl's), size (bytes on the wire), time, headers (lower-case names), body }
local function http(url, opts)
  opts = opts or {}
  local hfile, bfile = os.tmpname(), os.tmpname()
  local auth = opts.auth == nil and "test-key" or opts.auth
  local out = sh("curl -s --max-time 10 -D " .. q(hfile) .. " -o " .. q(bfile)
    .. (auth and " -H " .. q("authorization: " .. auth) or "") .. " " .. (opts.flags or "")
    .. " -w '%{http_code} %{size_download} %{time_total}' " .. q(url) .. "; echo \" $?\"")
  local r = { headers = {}, body = slurp(bfile) }
  for name, value in slurp(hfile):gmatch("([%w%-]+):%s*([^\r\n]*)") do r.headers[name:lower()] = value end
  os.remove(hfile); os.remove(bfile)
  local status, size, time, exit = out:match("(%d+) (%d+) ([%d.]+) (%d+)%s*$")
  r.status, r.size, r.time, r.exit = tonumber(status), tonumber(size), tonumber(time), tonumber(exit)
  return r
end

local function json(r) return cjson.decode(r.body) end

-- GET call-results of a run (run id already escaped as a path segment)
local function page(run, query, opts)
  return http(api.base_url .. "/v1/evals/runs/" .. run .. "/call-results" .. (query and "?" .. query or ""), opts)
end

local function ok_page(run, query)
  local r = page(run, query)
  assert.are.equal(200, r.status, r.body)
  return json(r).data, json(r)
end

local function ids_of(list)
  local out = {}
  for i, item in ipairs(list.data) do out[i] = item.id end
  return out
end

local function error_code(r) return json(r).errors[1].error end

describe("fake Bland Evals API", function()
  setup(function() api = fakeapi.start() end)
  teardown(function() if api then api.stop() end end)
  before_each(function() api.reset() end)

  it("starts with its URLs and certificate", function()
    assert.matches("^http://127%.0%.0%.1:%d+$", api.base_url)
    assert.matches("^https://127%.0%.0%.1:%d+$", api.tls_url)
    assert.truthy(io.open(api.cert)):close()
  end)

  describe("call-results paging", function()
    it("walks run-60 with limit 25 in 3 pages of distinct ids", function()
      local seen, all, cursor, pages = {}, {}, nil, 0
      repeat
        local list, body = ok_page("run-60", "limit=25" .. (cursor and "&starting_after=" .. cursor or ""))
        pages = pages + 1
        assert.are.equal("list", list.object)
        assert.are.equal("COMPLETE", body.run_status)
        assert.are.equal(60, body.run_resolved_call_count)
        assert.are.equal(cjson.null, body.errors)
        for _, item in ipairs(list.data) do
          assert.is_nil(seen[item.id]); seen[item.id] = true
          all[#all + 1] = item.id
          assert.are.equal("run-60", item.eval_run_id)
        end
        if list.has_more then
          assert.are.equal(all[#all], list.next_cursor)
          cursor = list.next_cursor
        else
          assert.are.equal(cjson.null, list.next_cursor)
        end
      until not list.has_more
      assert.are.equal(3, pages)
      assert.are.equal(60, #all)
      assert.are.same(all, ids_of(ok_page("run-60", "limit=100")))   -- pages are slices of one run
    end)

    it("defaults to 25 items and honours limit 1 and 100", function()
      assert.are.equal(25, #ok_page("run-60").data)
      assert.are.equal(1, #ok_page("run-60", "limit=1").data)
      local list = ok_page("run-60", "limit=100")
      assert.are.equal(60, #list.data)
      assert.is_false(list.has_more)
      assert.are.equal(cjson.null, list.next_cursor)
    end)

    it("pages backwards with ending_before, items in ascending order", function()
      local all = ids_of(ok_page("run-60", "limit=100"))
      local list = ok_page("run-60", "limit=25&ending_before=" .. all[51])
      local want = {}
      for i = 26, 50 do want[#want + 1] = all[i] end
      assert.are.same(want, ids_of(list))
      assert.is_true(list.has_more)
      assert.are.equal(all[26], list.next_cursor)               -- the first item: keep going back
      list = ok_page("run-60", "limit=25&ending_before=" .. all[26])
      assert.are.equal(all[1], list.data[1].id)
      assert.are.equal(25, #list.data)
      assert.is_false(list.has_more)
      assert.are.equal(cjson.null, list.next_cursor)
      assert.are.equal(0, #ok_page("run-60", "ending_before=" .. all[1]).data)
      assert.are.equal(0, #ok_page("run-60", "starting_after=" .. all[60]).data)
    end)

    it("rejects a bad limit with 400 BAD_REQUEST", function()
      for _, limit in ipairs { "0", "101", "abc", "2.5", "-1", "", "1e1", "25&limit=26" } do
        local r = page("run-60", "limit=" .. limit)
        assert.are.equal(400, r.status, limit)
        assert.are.equal("BAD_REQUEST", error_code(r))
        assert.are.equal(cjson.null, json(r).data)
      end
    end)

    it("validates include_agent_results and ignores unknown parameters", function()
      local with = ok_page("run-60", "include_agent_results=true")
      local n = 0
      for _, item in ipairs(with.data) do n = math.max(n, #item.agent_results) end
      assert.are.equal(3, n)
      for _, item in ipairs(ok_page("run-60", "include_agent_results=false&foo=bar").data) do
        assert.are.equal(0, #item.agent_results)
      end
      for _, v in ipairs { "yes", "1", "TRUE" } do
        local r = page("run-60", "include_agent_results=" .. v)
        assert.are.equal(400, r.status)
        assert.are.equal("BAD_REQUEST", error_code(r))
      end
    end)

    it("refuses both cursors, and unknown cursors", function()
      local id = ok_page("run-60").data[3].id
      local r = page("run-60", "starting_after=" .. id .. "&ending_before=" .. id)
      assert.are.equal(400, r.status)
      assert.are.equal("Cannot combine starting_after and ending_before", json(r).errors[1].message)
      for _, query in ipairs { "starting_after=nope", "ending_before=nope", "starting_after=" } do
        r = page("run-60", query)
        assert.are.equal(400, r.status, query)
        assert.are.equal("INVALID_CURSOR", error_code(r))
      end
      assert.are.equal("INVALID_CURSOR", error_code(page("run-61", "starting_after=" .. id)))
    end)

    it("serves the sizes of run-0 and run-5000, 404 beyond", function()
      local list = ok_page("run-0")
      assert.are.equal(0, #list.data)
      assert.is_false(list.has_more)
      local last = ok_page("run-5000", "limit=100&starting_after=" .. ok_page("run-5000", "limit=100").next_cursor)
      assert.are.equal(100, #last.data)
      assert.are.equal(404, page("run-5001").status)
    end)
  end)

  describe("errors and headers", function()
    it("accepts the raw key and the Bearer form, 401 otherwise", function()
      assert.are.equal(200, page("run-5", nil, { auth = "test-key" }).status)
      assert.are.equal(200, page("run-5", nil, { auth = "Bearer test-key" }).status)
      for _, auth in ipairs { false, "wrong", "Bearer wrong", "bearer test-key", "" } do
        local r = page("run-5", nil, { auth = auth })
        assert.are.equal(401, r.status)
        assert.are.same({ data = cjson.null, errors = { { error = "AUTH_FAILURE", message = "Unauthorized" } } }, json(r))
      end
      local stats = api.stats("run-5")
      assert.are.equal(7, stats.requests)
      -- curl drops a header with an empty value: the last request has none either
      assert.are.same({ "test-key", "Bearer test-key", cjson.null, "wrong", "Bearer wrong",
        "bearer test-key", cjson.null }, stats.auth)
    end)

    it("404s unknown runs and endpoints", function()
      for _, run in ipairs { "nope", "run-5001", "opaque-5001", "fault-unknown", "RUN-5" } do
        local r = page(run)
        assert.are.equal(404, r.status, run)
        assert.are.equal("EVAL_RUN_NOT_FOUND", error_code(r))
      end
      -- (GET /v1/evals/runs/run-5 itself is the run object now)
      for _, path in ipairs { "/v1/evals/runs/run-5/nope", "/v1/evals/runs/run-5/", "/v1/evals/nope", "/v1/evals/runs/" } do
        local r = http(api.base_url .. path)
        assert.are.equal(404, r.status, path)
        assert.are.equal("NOT_FOUND", error_code(r))
      end
    end)

    it("sends a distinct x-request-id on every response", function()
      local a, b = page("run-5"), page("nope")
      local c = http(api.base_url .. "/_stats?run=x")
      assert.matches("^req_%d+$", a.headers["x-request-id"])
      assert.matches("^req_%d+$", b.headers["x-request-id"])
      assert.matches("^req_%d+$", c.headers["x-request-id"])
      assert.are_not.equal(a.headers["x-request-id"], b.headers["x-request-id"])
    end)

    it("gzips JSON for clients that accept it", function()
      local r = page("run-60", "limit=100", { flags = "--compressed" })
      assert.are.equal("gzip", r.headers["content-encoding"])
      assert.is_true(r.size < #r.body / 2)
      assert.are.equal(60, #json(r).data.data)
      assert.is_nil(page("run-60").headers["content-encoding"])
    end)

    it("keeps connections alive, and counts them in /_stats", function()
      local url = api.base_url .. "/v1/evals/runs/run-7/call-results"
      sh("curl -s -o /dev/null -o /dev/null -H 'authorization: test-key' " .. q(url) .. " " .. q(url .. "?limit=2"))
      local stats = api.stats("run-7")
      assert.are.equal(2, stats.requests)
      assert.are.equal(1, stats.connections)
      assert.are.same({ "/v1/evals/runs/run-7/call-results", "/v1/evals/runs/run-7/call-results?limit=2" }, stats.paths)
      page("run-7")
      assert.are.equal(2, api.stats("run-7").connections)
    end)

    it("round-trips a percent-encoded run id", function()
      local list = ok_page("run-a%20b%2Fc%3Fd")
      assert.are.equal(3, #list.data)
      for _, item in ipairs(list.data) do assert.are.equal("run-a b/c?d", item.eval_run_id) end
      assert.are.equal("run-x+y", ok_page("run-x+y").data[1].eval_run_id)   -- '+' is literal in a path
      local stats = api.stats("run-a b/c?d")
      assert.are.equal(1, stats.requests)
      assert.are.same({ "/v1/evals/runs/run-a%20b%2Fc%3Fd/call-results" }, stats.paths)
    end)

    it("serves agent snapshots as one page", function()
      local r = http(api.base_url .. "/v1/evals/runs/run-a%2Fb/agent-snapshots?limit=1")
      assert.are.equal(200, r.status)
      local list = json(r).data
      assert.are.equal(3, #list.data)
      assert.is_false(list.has_more)
      assert.are.equal(cjson.null, list.next_cursor)
      for i, s in ipairs(list.data) do
        assert.are.equal(i - 1, s.position)
        assert.are.equal("run-a/b", s.eval_run_id)
      end
      assert.are.equal(404, http(api.base_url .. "/v1/evals/runs/nope/agent-snapshots").status)
    end)
  end)

  describe("opaque cursors", function()
    it("pages opaque-60 with tokens that are not item ids", function()
      local ids, cursor, pages = {}, nil, 0
      repeat
        local list = ok_page("opaque-60", cursor and "starting_after=" .. cursor)
        pages = pages + 1
        for _, item in ipairs(list.data) do ids[#ids + 1] = item.id end
        if list.has_more then
          assert.are_not.equal(ids[#ids], list.next_cursor)
          cursor = list.next_cursor:gsub("=", "%%3D")
        end
      until not list.has_more
      assert.are.equal(3, pages)
      assert.are.same(ids_of(ok_page("run-60", "limit=100")), ids)
      local r = page("opaque-60", "starting_after=" .. ids[25])
      assert.are.equal(400, r.status)
      assert.are.equal("INVALID_CURSOR", error_code(r))
      local back = ok_page("opaque-60", "limit=10&ending_before=" .. ok_page("opaque-60").next_cursor)
      assert.are.equal(ids[15], back.data[1].id)
      assert.are.equal(ids[24], back.data[10].id)
      assert.are.equal(200, page("opaque-60", "starting_after=" .. back.next_cursor).status)
    end)
  end)

  describe("fault runs", function()
    -- page 1 (must succeed) and the cursor for page 2
    local function first(run)
      local list = ok_page(run)
      assert.is_true(list.has_more)
      return list.next_cursor, list
    end

    it("fault-429: 429 with Retry-After once per cursor", function()
      local cursor = first("fault-429")
      local r = page("fault-429", "starting_after=" .. cursor)
      assert.are.equal(429, r.status)
      assert.are.equal("1", r.headers["retry-after"])
      assert.are.equal("RATE_LIMITED", error_code(r))
      assert.are.equal(200, page("fault-429", "starting_after=" .. cursor).status)
      assert.are.equal(429, page("fault-429@other", "starting_after=" .. cursor).status)  -- own state
    end)

    it("fault-503-once: 503 once per cursor, again after /_reset", function()
      local cursor = first("fault-503-once")
      assert.are.equal(503, page("fault-503-once", "starting_after=" .. cursor).status)
      assert.are.equal(200, page("fault-503-once", "starting_after=" .. cursor).status)
      api.reset()
      assert.are.equal(0, api.stats("fault-503-once").requests)
      assert.are.equal(503, page("fault-503-once", "starting_after=" .. cursor).status)
    end)

    it("fault-500-forever: always 500 on page 2", function()
      local cursor = first("fault-500-forever")
      for _ = 1, 3 do
        local r = page("fault-500-forever", "starting_after=" .. cursor)
        assert.are.equal(500, r.status)
        assert.are.equal("INTERNAL_SERVER_ERROR", error_code(r))
      end
    end)

    it("fault-reset: the connection closes mid-body once per cursor", function()
      local cursor = first("fault-reset")
      local r = page("fault-reset", "starting_after=" .. cursor)
      assert.are.equal(18, r.exit)                       -- CURLE_PARTIAL_FILE
      assert.is_true(r.size > 0 and r.size < tonumber(r.headers["content-length"]))
      r = page("fault-reset", "starting_after=" .. cursor)
      assert.are.equal(0, r.exit)
      assert.are.equal(25, #json(r).data.data)
    end)

    it("fault-truncated: a short body every time, even with gzip accepted", function()
      local cursor = first("fault-truncated")
      for _, flags in ipairs { "", "--compressed" } do
        local r = page("fault-truncated", "starting_after=" .. cursor, { flags = flags })
        assert.are.equal(18, r.exit)
      end
    end)

    it("fault-truncated-json: a complete 200 body with cut JSON", function()
      local cursor = first("fault-truncated-json")
      local r = page("fault-truncated-json", "starting_after=" .. cursor)
      assert.are.equal(0, r.exit)
      assert.are.equal(200, r.status)
      assert.is_false((pcall(cjson.decode, r.body)))
    end)

    it("fault-html502: an HTML 502 once per cursor", function()
      local cursor = first("fault-html502")
      local r = page("fault-html502", "starting_after=" .. cursor)
      assert.are.equal(502, r.status)
      assert.matches("^text/html", r.headers["content-type"])
      assert.matches("^<html>", r.body)
      assert.are.equal(200, page("fault-html502", "starting_after=" .. cursor).status)
    end)

    it("fault-no-cursor: has_more with a null next_cursor", function()
      local list = ok_page("fault-no-cursor")
      assert.is_true(list.has_more)
      assert.are.equal(cjson.null, list.next_cursor)
    end)

    it("fault-stuck-cursor: page 2 hands back the same cursor", function()
      local cursor = first("fault-stuck-cursor")
      local list = ok_page("fault-stuck-cursor", "starting_after=" .. cursor)
      assert.is_true(list.has_more)
      assert.are.equal(cursor, list.next_cursor)
    end)

    it("fault-repeat-id: page 2 starts with page 1's last id", function()
      local cursor, p1 = first("fault-repeat-id")
      local list = ok_page("fault-repeat-id", "starting_after=" .. cursor)
      assert.are.equal(p1.data[25].id, list.data[1].id)
      assert.are.equal(25, #list.data)
    end)

    it("fault-errors-200: page 2 has data and errors", function()
      local cursor = first("fault-errors-200")
      local r = page("fault-errors-200", "starting_after=" .. cursor)
      assert.are.equal(200, r.status)
      assert.are.equal(25, #json(r).data.data)
      assert.are.equal("PARTIAL_FAILURE", error_code(r))
    end)

    it("fault-slow: page 2 takes 3 seconds", function()
      local cursor = first("fault-slow")
      local r = page("fault-slow", "starting_after=" .. cursor)
      assert.are.equal(200, r.status)
      assert.is_true(r.time >= 2.9, tostring(r.time))
    end)

    it("fault-deep: page 1 nests 2000 levels", function()
      local r = page("fault-deep")
      assert.are.equal(200, r.status)
      local depth, max = 0, 0
      for c in r.body:gmatch("[%[%]{}]") do
        depth = depth + ((c == "[" or c == "{") and 1 or -1)
        if depth > max then max = depth end
      end
      assert.are.equal(0, depth)
      assert.is_true(max >= 2000)
    end)

    it("fault-big: page 1 is a valid body of about 3 MB", function()
      local r = page("fault-big")
      assert.are.equal(200, r.status)
      assert.is_true(r.size >= 3e6 and r.size < 3.5e6, tostring(r.size))
      local list = json(r).data
      assert.are.equal(25, #list.data)
      assert.is_true(list.has_more)
    end)

    it("fault-not-envelope: 200 with a bare array", function()
      local r = page("fault-not-envelope")
      assert.are.equal(200, r.status)
      local v = json(r)
      assert.is_table(v[1])
      assert.is_nil(v.data)
    end)
  end)

  -- Endpoints beyond call-results and agent-snapshots: status, run objects, agent results, the
  -- run list, comparison runs and progressing runs.

  local function get(path, opts) return http(api.base_url .. path, opts) end

  local function ok_get(path)
    local r = get(path)
    assert.are.equal(200, r.status, path .. ": " .. r.body)
    local v = json(r)
    assert.are.equal(cjson.null, v.errors)
    return v.data, r
  end

  local function run_of(id) return (ok_get("/v1/evals/runs/" .. id)) end

  -- every call result of a run, with its agent results
  local function calls_of(run)
    local out, cursor = {}, nil
    repeat
      local list = ok_get("/v1/evals/runs/" .. run .. "/call-results?include_agent_results=true&limit=100"
        .. (cursor and "&starting_after=" .. cursor or ""))
      for _, item in ipairs(list.data) do out[#out + 1] = item end
      cursor = list.next_cursor
    until not list.has_more
    return out
  end

  local function flat_results(calls)
    local out = {}
    for _, c in ipairs(calls) do
      for _, a in ipairs(c.agent_results) do out[#out + 1] = a end
    end
    return out
  end

  -- every page of a list endpoint (path with its query), following next_cursor
  local function walk(path, limit)
    local out, cursor, pages = {}, nil, 0
    local sep = path:find("?", 1, true) and "&" or "?"
    repeat
      local list = ok_get(path .. sep .. "limit=" .. limit .. (cursor and "&starting_after=" .. cursor or ""))
      pages = pages + 1
      for _, item in ipairs(list.data) do out[#out + 1] = item end
      if list.has_more then
        assert.are.equal(list.data[#list.data].id, list.next_cursor)
        cursor = list.next_cursor
      else
        assert.are.equal(cjson.null, list.next_cursor)
      end
    until not list.has_more
    return out, pages
  end

  local function round(x, digits) local m = 10 ^ digits; return math.floor(x * m + 0.5) / m end

  local function assert_keys(obj, keys, text)
    local n = 0
    for _ in pairs(obj) do n = n + 1 end
    assert.are.equal(#keys, n)
    local pos = 1
    for _, k in ipairs(keys) do
      assert.is_not_nil(obj[k], k)
      if text then                      -- and in this order in the body
        local at = text:find('"' .. k .. '":', pos, true)
        assert.is_truthy(at, k .. " missing or out of order")
        pos = at + 1
      end
    end
  end

  local RUN_KEYS = { "id", "org_id", "status", "triggered_by", "run_mode", "submitted_call_ids",
    "submitted_attached_agents", "workbench_setup_id", "workbench_setup_version_id",
    "resolved_call_count", "resolved_agent_count", "resolved_atom_count", "completed_atom_count",
    "summary", "billable_cost_usd", "error_code", "error_message", "workflow_id", "metadata",
    "created_at", "started_at", "completed_at" }
  local LIST_KEYS = { "id", "status", "triggered_by", "run_mode", "resolved_call_count",
    "resolved_agent_count", "resolved_atom_count", "completed_atom_count", "summary",
    "billable_cost_usd", "workbench_setup_id", "workbench_setup_version_id", "metadata",
    "created_at", "started_at", "completed_at" }
  local SUMMARY_KEYS = { "overall_score_mean", "text_score_mean", "audio_score_mean",
    "successful_call_count", "failed_call_count", "insufficient_evidence_count",
    "target_match_count", "pass_threshold_pct", "overall_pass" }
  local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

  describe("evals status", function()
    it("is enabled, behind the usual auth, counted under its path", function()
      local data, r = ok_get("/v1/evals/status")
      assert.are.same({ enabled = true, gate = "evals_enabled", reason = cjson.null }, data)
      assert.are.equal('{"data":{"enabled":true,"gate":"evals_enabled","reason":null},"errors":null}', r.body)
      local bad = get("/v1/evals/status", { auth = false })
      assert.are.equal(401, bad.status)
      assert.are.equal("AUTH_FAILURE", error_code(bad))
      assert.are.equal(405, get("/v1/evals/status", { flags = "-X POST" }).status)
      local stats = api.stats("/v1/evals/status")
      assert.are.equal(3, stats.requests)
      assert.are.same({ "test-key", cjson.null, "test-key" }, stats.auth)
    end)
  end)

  describe("run objects", function()
    it("describe run-60 from its own call results, agent results and snapshots", function()
      local run, r = ok_get("/v1/evals/runs/run-60")
      assert_keys(run, RUN_KEYS, r.body)
      assert_keys(run.summary, SUMMARY_KEYS, r.body)
      assert.are.equal("run-60", run.id)
      assert.are.equal("COMPLETE", run.status)
      assert.are.equal("manual", run.triggered_by)
      assert.are.equal("text", run.run_mode)
      assert.are.equal(60, run.resolved_call_count)
      assert.are.equal(3, run.resolved_agent_count)
      assert.are.equal(180, run.resolved_atom_count)
      for _, k in ipairs { "workbench_setup_id", "workbench_setup_version_id", "error_code", "error_message" } do
        assert.are.equal(cjson.null, run[k], k)
      end
      assert.matches('"metadata":{}', r.body, 1, true)
      assert.is_string(run.workflow_id)
      for _, k in ipairs { "created_at", "started_at", "completed_at" } do assert.matches(ISO, run[k]) end
      assert.is_true(run.created_at < run.started_at and run.started_at < run.completed_at)

      local calls = calls_of("run-60")
      local call_ids, latest = {}, ""
      local ov, tx, au = { 0, 0 }, { 0, 0 }, { 0, 0 }
      local complete, failed, insufficient, targets, cost = 0, 0, 0, 0, 0
      local function add(acc, v) if v ~= cjson.null then acc[1], acc[2] = acc[1] + v, acc[2] + 1 end end
      for i, c in ipairs(calls) do
        call_ids[i] = c.call_id
        assert.are.equal(run.org_id, c.org_id)
        if c.completed_at ~= cjson.null and c.completed_at > latest then latest = c.completed_at end
        if c.status == "COMPLETE" then
          complete = complete + 1
          add(ov, c.overall_score_normalized_0_100); add(tx, c.text_score_normalized_0_100)
          add(au, c.audio_score_normalized_0_100)
        elseif c.status == "FAILED" then failed = failed + 1 end
        for _, a in ipairs(c.agent_results) do
          if a.is_insufficient_evidence then insufficient = insufficient + 1 end
          if a.is_target_match == true then targets = targets + 1 end
          if a.billable_cost_usd ~= cjson.null then cost = cost + math.floor(a.billable_cost_usd * 10000 + 0.5) end
        end
      end
      local function mean(acc) return acc[2] > 0 and round(acc[1] / acc[2], 2) or cjson.null end
      assert.are.same(call_ids, run.submitted_call_ids)
      assert.are.equal(#flat_results(calls), run.completed_atom_count)
      assert.are.equal(latest, run.completed_at)
      assert.is_true(math.abs(cost / 10000 - run.billable_cost_usd) < 1e-9)
      local s = run.summary
      assert.are.same({ mean(ov), mean(tx), mean(au) }, { s.overall_score_mean, s.text_score_mean, s.audio_score_mean })
      assert.are.same({ complete, failed, insufficient, targets, cjson.null, cjson.null },
        { s.successful_call_count, s.failed_call_count, s.insufficient_evidence_count,
          s.target_match_count, s.pass_threshold_pct, s.overall_pass })

      local snaps = ok_get("/v1/evals/runs/run-60/agent-snapshots").data
      assert.are.equal(3, #run.submitted_attached_agents)
      for i, a in ipairs(run.submitted_attached_agents) do
        assert_keys(a, { "eval_agent_id", "eval_agent_version_id", "weight", "target_level_keys" })
        assert.are.same({ snaps[i].eval_agent_id, snaps[i].eval_agent_version_id, snaps[i].weight, snaps[i].target_level_keys },
          { a.eval_agent_id, a.eval_agent_version_id, a.weight, a.target_level_keys })
      end
    end)

    it("answer for every kind of run id, 404 EVAL_RUN_NOT_FOUND for others", function()
      local known = { ["run-0"] = 0, ["run-a%20b%2Fc"] = 3, ["opaque-5"] = 5, ["slow10-4"] = 4,
        ["fault-429%40t"] = 60, ["pending-5"] = 5, ["queued-5"] = 5, ["running-5"] = 5,
        ["partial-5"] = 5, ["failed-5"] = 5, ["cancelled-5"] = 5, ["cmp-a-5"] = 5, ["cmp-b-5"] = 5,
        ["progress-5%40t"] = 5, ["progress-fail-5"] = 5, ["progress-cancel-5"] = 5, ["run-5000"] = 5000 }
      for id, n in pairs(known) do
        local run = run_of(id)
        assert.are.equal(n, run.resolved_call_count, id)
        assert.are.equal(n, #run.submitted_call_ids, id)
        assert.are.equal(3 * n, run.resolved_atom_count, id)
      end
      assert.are.equal("run-a b/c", run_of("run-a%20b%2Fc").id)
      assert.are.equal("fault-429@t", run_of("fault-429%40t").id)
      for _, id in ipairs { "nope", "run-5001", "pending-5001", "cmp-c-5", "cmp-a-x", "progress-x-5",
          "progress-5001", "PENDING-5", "partial-", "complete-5" } do
        local r = get("/v1/evals/runs/" .. id)
        assert.are.equal(404, r.status, id)
        assert.are.equal("EVAL_RUN_NOT_FOUND", error_code(r))
        assert.are.equal(cjson.null, json(r).data)
      end
      assert.are.equal(401, get("/v1/evals/runs/run-5", { auth = "wrong" }).status)
      assert.are.same({ "wrong" }, api.stats("run-5").auth)
    end)

    it("have fixed statuses for pending-N, queued-N, running-N, partial-N, failed-N, cancelled-N", function()
      local pending = run_of("pending-20")
      assert.are.same({ "PENDING", 0, cjson.null, cjson.null, cjson.null, cjson.null },
        { pending.status, pending.completed_atom_count, pending.summary, pending.billable_cost_usd,
          pending.started_at, pending.completed_at })
      local queued = run_of("queued-30")
      assert.are.equal("QUEUED", queued.status)
      assert.are.equal(0, queued.completed_atom_count)
      assert.matches(ISO, queued.started_at)
      assert.are.equal(cjson.null, queued.completed_at)

      local running = run_of("running-60")
      assert.are.equal("RUNNING", running.status)
      assert.are.equal(#flat_results(calls_of("running-60")), running.completed_atom_count)
      assert.is_true(running.completed_atom_count < running.resolved_atom_count)
      assert.are.same({ cjson.null, cjson.null, cjson.null },
        { running.summary, running.billable_cost_usd, running.completed_at })

      local partial = run_of("partial-40")
      assert.are.equal("PARTIAL", partial.status)
      assert.are.equal(120, partial.completed_atom_count)    -- settled: every call has its 3 results
      assert.is_true(partial.summary.failed_call_count > 0)
      assert.is_true(partial.summary.successful_call_count > 0)

      local failed = run_of("failed-12")
      assert.are.equal("FAILED", failed.status)
      assert.are.equal("JUDGE_PROVIDER_UNAVAILABLE", failed.error_code)
      assert.is_string(failed.error_message)
      assert.are.equal(cjson.null, failed.summary)
      assert.matches(ISO, failed.completed_at)

      local cancelled = run_of("cancelled-90")
      assert.are.equal("CANCELLED", cancelled.status)
      assert.are.equal(cjson.null, cancelled.error_code)
      assert.matches(ISO, cancelled.completed_at)
      assert.is_number(cancelled.billable_cost_usd)

      for id, status in pairs { ["pending-20"] = "PENDING", ["partial-40"] = "PARTIAL", ["run-60"] = "COMPLETE" } do
        local _, body = ok_page(id, "limit=1")
        assert.are.equal(status, body.run_status, id)
      end
    end)

    it("run-2000 has FAILED and INSUFFICIENT_EVIDENCE calls and failed verdicts", function()
      local run = run_of("run-2000")
      assert.are.same({ 1383, 173, 742, 2275, 5257 }, { run.summary.successful_call_count,
        run.summary.failed_call_count, run.summary.insufficient_evidence_count,
        run.summary.target_match_count, run.completed_atom_count })
      local failed_calls = 0
      for _, c in ipairs(ok_page("run-2000", "limit=100").data) do
        if c.failed_agent_count > 0 then failed_calls = failed_calls + 1 end
      end
      assert.is_true(failed_calls > 5)
    end)
  end)

  describe("agent-results", function()
    it("serve the embedded agent results of run-60, flattened, on pages of any size", function()
      local want = flat_results(calls_of("run-60"))
      assert.are.equal(156, #want)
      for _, limit in ipairs { 7, 25, 100 } do
        local got, pages = walk("/v1/evals/runs/run-60/agent-results", limit)
        assert.are.same(want, got)
        assert.are.equal(math.ceil(#want / limit), pages)
      end
      assert.are.equal(25, #ok_get("/v1/evals/runs/run-60/agent-results").data)
      local one = ok_get("/v1/evals/runs/run-60/agent-results?limit=1&starting_after=" .. want[9].id)
      assert.are.same({ want[10] }, one.data)
      assert.are.equal(want[10].id, one.next_cursor)
      local body = get("/v1/evals/runs/run-60/agent-results").body
      assert.is_nil(json({ body = body }).run_status)             -- no extras on this list
    end)

    it("page backwards with ending_before, items in ascending order", function()
      local all = walk("/v1/evals/runs/run-60/agent-results", 100)
      local list = ok_get("/v1/evals/runs/run-60/agent-results?limit=10&ending_before=" .. all[51].id)
      assert.are.equal(all[41].id, list.data[1].id)
      assert.are.equal(all[50].id, list.data[10].id)
      assert.is_true(list.has_more)
      assert.are.equal(all[41].id, list.next_cursor)
      list = ok_get("/v1/evals/runs/run-60/agent-results?limit=100&ending_before=" .. all[41].id)
      assert.are.equal(40, #list.data)
      assert.is_false(list.has_more)
      assert.are.equal(cjson.null, list.next_cursor)
      assert.are.equal(0, #ok_get("/v1/evals/runs/run-60/agent-results?starting_after=" .. all[#all].id).data)
    end)

    it("check limit and cursors like call-results", function()
      local path = "/v1/evals/runs/run-60/agent-results?"
      for _, limit in ipairs { "0", "101", "abc", "2.5", "" } do
        local r = get(path .. "limit=" .. limit)
        assert.are.equal(400, r.status, limit)
        assert.are.equal("BAD_REQUEST", error_code(r))
      end
      local id = ok_get(path).data[3].id
      local r = get(path .. "starting_after=" .. id .. "&ending_before=" .. id)
      assert.are.equal(400, r.status)
      assert.are.equal("Cannot combine starting_after and ending_before", json(r).errors[1].message)
      local call_id = ok_page("run-60").data[1].id                -- a call-result id is no cursor here
      for _, q in ipairs { "starting_after=nope", "ending_before=" .. call_id, "starting_after=" } do
        assert.are.equal("INVALID_CURSOR", error_code(get(path .. q)), q)
      end
      assert.are.equal("EVAL_RUN_NOT_FOUND", error_code(get("/v1/evals/runs/nope/agent-results")))
      local empty = ok_get("/v1/evals/runs/run-0/agent-results")
      assert.are.same({ 0, false, cjson.null }, { #empty.data, empty.has_more, empty.next_cursor })
    end)

    it("use item ids as cursors on opaque runs too, and serve deep pages of run-5000", function()
      local page1 = ok_get("/v1/evals/runs/opaque-60/agent-results?limit=5")
      assert.are.equal(page1.data[5].id, page1.next_cursor)
      local plain, opaque = walk("/v1/evals/runs/run-60/agent-results", 50), walk("/v1/evals/runs/opaque-60/agent-results", 50)
      assert.are.equal(#plain, #opaque)
      for i, item in ipairs(opaque) do
        assert.are.equal(plain[i].id, item.id)
        assert.are.equal("opaque-60", item.eval_run_id)
      end
      local head = ok_get("/v1/evals/runs/run-5000/agent-results?limit=100")
      local deep = ok_get("/v1/evals/runs/run-5000/agent-results?limit=100&starting_after=" .. head.next_cursor)
      assert.are.equal(100, #deep.data)
      local back = ok_get("/v1/evals/runs/run-5000/agent-results?limit=100&ending_before=" .. deep.data[1].id)
      assert.are.same(head.data, back.data)
    end)
  end)

  describe("runs list", function()
    it("serves about 40 runs newest first, each one the run object agrees with", function()
      local all, pages = walk("/v1/evals/runs", 7)
      assert.is_true(#all >= 35 and #all <= 50)
      assert.are.equal(math.ceil(#all / 7), pages)
      local seen, statuses, triggers = {}, {}, {}
      for i, item in ipairs(all) do
        assert_keys(item, LIST_KEYS)
        assert.is_nil(seen[item.id]); seen[item.id] = true
        statuses[item.status], triggers[item.triggered_by] = true, true
        if i > 1 then assert.is_true(all[i - 1].created_at >= item.created_at) end
      end
      for _, id in ipairs { "cmp-a-300", "cmp-b-300", "progress-50" } do assert.is_true(seen[id], id) end
      assert.are.same({ PENDING = true, QUEUED = true, RUNNING = true, COMPLETE = true, PARTIAL = true,
        FAILED = true, CANCELLED = true }, statuses)
      assert.are.same({ manual = true, auto = true, backfill = true }, triggers)
      assert.are.same(all, walk("/v1/evals/runs", 100))
      assert.are.equal(25, #ok_get("/v1/evals/runs").data)
      local _, r = ok_get("/v1/evals/runs?limit=1")
      assert_keys(json(r).data.data[1], LIST_KEYS, r.body)
      for _, item in ipairs(all) do                 -- (progress-50 stays PENDING on its first GET)
        local run = run_of(item.id)
        for _, k in ipairs(LIST_KEYS) do assert.are.same(run[k], item[k], item.id .. " " .. k) end
      end
    end)

    it("filters by status, triggered_by, workbench_setup_id and eval_agent_id", function()
      local all = walk("/v1/evals/runs", 100)
      local function expect(query, keep)
        local want = {}
        for _, item in ipairs(all) do if keep(item) then want[#want + 1] = item.id end end
        local got = {}
        for i, item in ipairs(walk("/v1/evals/runs?" .. query, 3)) do got[i] = item.id end
        assert.are.same(want, got, query)
        return got
      end
      for _, st in ipairs { "PENDING", "QUEUED", "RUNNING", "COMPLETE", "PARTIAL", "FAILED", "CANCELLED" } do
        assert.is_true(#expect("status=" .. st, function(i) return i.status == st end) > 0, st)
      end
      for _, t in ipairs { "manual", "auto", "backfill" } do
        expect("triggered_by=" .. t, function(i) return i.triggered_by == t end)
      end
      local cmp = run_of("cmp-a-300")
      local setup = cmp.workbench_setup_id
      assert.is_string(setup)
      expect("workbench_setup_id=" .. setup, function(i) return i.workbench_setup_id == setup end)
      expect("workbench_setup_id=" .. setup .. "&status=COMPLETE&triggered_by=manual", function(i)
        return i.workbench_setup_id == setup and i.status == "COMPLETE" and i.triggered_by == "manual"
      end)
      -- the comparison runs share their agents; every other run has its own
      local agent = cmp.submitted_attached_agents[2].eval_agent_id
      assert.are.same({ "cmp-b-300", "cmp-a-300" }, expect("eval_agent_id=" .. agent, function(i)
        return i.id == "cmp-a-300" or i.id == "cmp-b-300" end))
      local other = run_of("run-60").submitted_attached_agents[1].eval_agent_id
      assert.are.same({ "run-60" }, expect("eval_agent_id=" .. other, function(i) return i.id == "run-60" end))
      for _, q in ipairs { "eval_agent_id=nope", "workbench_setup_id=nope", "eval_agent_id=" } do
        local list = ok_get("/v1/evals/runs?" .. q)
        assert.are.same({ 0, false, cjson.null }, { #list.data, list.has_more, list.next_cursor })
      end
    end)

    it("rejects bad filters and cursors with 400", function()
      for _, q in ipairs { "status=complete", "status=DONE", "status=", "status=COMPLETE&status=FAILED",
          "triggered_by=Manual", "triggered_by=api", "triggered_by=", "eval_agent_id", "limit=0", "limit=101",
          "starting_after=run-1&ending_before=run-1" } do
        local r = get("/v1/evals/runs?" .. q)
        assert.are.equal(400, r.status, q)
        assert.are.equal("BAD_REQUEST", error_code(r), q)
        assert.are.equal(cjson.null, json(r).data)
      end
      for _, q in ipairs { "starting_after=nope", "ending_before=run-4999", "starting_after=" } do
        assert.are.equal("INVALID_CURSOR", error_code(get("/v1/evals/runs?" .. q)), q)
      end
    end)

    it("pages with cursors that need not match the filter, backwards too", function()
      local all = walk("/v1/evals/runs", 100)
      local ids = {}
      for i, item in ipairs(all) do ids[i] = item.id end
      local list = ok_get("/v1/evals/runs?limit=5&starting_after=" .. ids[10])
      assert.are.same({ ids[11], ids[15] }, { list.data[1].id, list.data[5].id })
      list = ok_get("/v1/evals/runs?limit=5&ending_before=" .. ids[10])
      assert.are.same({ ids[5], ids[9], true, ids[5] }, { list.data[1].id, list.data[5].id, list.has_more, list.next_cursor })
      -- with a filter: the matching runs after (before) the cursor's place in the full list
      local auto = {}
      for _, item in ipairs(all) do if item.triggered_by == "auto" then auto[#auto + 1] = item.id end end
      local cursor                                   -- a manual run with auto runs on both sides
      for i = 2, #all - 1 do
        if all[i].triggered_by ~= "auto" and all[i - 1].triggered_by == "auto" then cursor = i; break end
      end
      local before, after = {}, {}
      for i, item in ipairs(all) do
        if item.triggered_by == "auto" then
          if i < cursor then before[#before + 1] = item.id else after[#after + 1] = item.id end
        end
      end
      local function ids_of_list(l) local o = {}; for i, it in ipairs(l.data) do o[i] = it.id end; return o end
      assert.are.same(after, ids_of_list(ok_get("/v1/evals/runs?triggered_by=auto&limit=100&starting_after=" .. ids[cursor])))
      assert.are.same(before, ids_of_list(ok_get("/v1/evals/runs?triggered_by=auto&limit=100&ending_before=" .. ids[cursor])))
      assert.are.equal(#auto, #before + #after)
    end)

    it("shows progress-50's current status without moving it, and counts under its path", function()
      local function listed_status()
        for _, item in ipairs(walk("/v1/evals/runs", 100)) do
          if item.id == "progress-50" then return item.status end
        end
      end
      assert.are.equal("PENDING", listed_status())
      assert.are.equal("PENDING", listed_status())
      for _ = 1, 5 do run_of("progress-50") end
      assert.are.equal("COMPLETE", listed_status())
      local ids = {}
      for i, item in ipairs(ok_get("/v1/evals/runs?status=COMPLETE&limit=100").data) do ids[item.id] = i end
      assert.is_not_nil(ids["progress-50"])
      local stats = api.stats("/v1/evals/runs")
      assert.are.equal(4, stats.requests)
      assert.are.same({ "/v1/evals/runs?limit=100", "/v1/evals/runs?limit=100", "/v1/evals/runs?limit=100",
        "/v1/evals/runs?status=COMPLETE&limit=100" }, stats.paths)
    end)
  end)

  describe("comparison runs", function()
    it("cmp-a-N and cmp-b-N score the same calls with the same agents", function()
      local a, b = calls_of("cmp-a-300"), calls_of("cmp-b-300")
      assert.are.equal(300, #a)
      assert.are.equal(300, #b)
      local sa = ok_get("/v1/evals/runs/cmp-a-300/agent-snapshots").data
      local sb = ok_get("/v1/evals/runs/cmp-b-300/agent-snapshots").data
      local b_snapshot = {}
      for i = 1, 3 do
        assert.are.same({ sa[i].eval_agent_id, sa[i].eval_agent_version_id, sa[i].key, sa[i].position },
          { sb[i].eval_agent_id, sb[i].eval_agent_version_id, sb[i].key, sb[i].position })
        assert.are_not.equal(sa[i].id, sb[i].id)
        b_snapshot[sb[i].id] = true
      end
      for i = 1, 300 do
        local x, y = a[i], b[i]
        assert.are.same({ x.call_id, x.call_display_name, x.call_started_at, x.status, x.failed_agent_count,
          x.insufficient_evidence_agent_count, #x.agent_results },
          { y.call_id, y.call_display_name, y.call_started_at, y.status, y.failed_agent_count,
            y.insufficient_evidence_agent_count, #y.agent_results })
        assert.are_not.equal(x.id, y.id)
        assert.are.equal("cmp-b-300", y.eval_run_id)
        assert.is_true(y.created_at > x.created_at)
        for _, r in ipairs(y.agent_results) do
          assert.are.equal(y.id, r.eval_run_call_result_id)
          assert.is_true(b_snapshot[r.eval_run_agent_snapshot_id])
        end
      end
      local ra, rb = run_of("cmp-a-300"), run_of("cmp-b-300")
      assert.are.same(ra.submitted_call_ids, rb.submitted_call_ids)
      assert.are.same(ra.submitted_attached_agents, rb.submitted_attached_agents)
      assert.are.equal("COMPLETE", rb.status)
      assert.are.equal(900, rb.completed_atom_count)              -- settled: no unfinished calls
    end)

    it("cmp-b's first agent loses about a third of its target matches, the others do not change", function()
      local a, b = calls_of("cmp-a-300"), calls_of("cmp-b-300")
      local ignore = { id = true, eval_run_id = true, eval_run_call_result_id = true,
        eval_run_agent_snapshot_id = true, created_at = true }
      local hits, lost = 0, 0
      for i = 1, 300 do
        for k, x in ipairs(a[i].agent_results) do
          local y = b[i].agent_results[k]
          local changed = {}
          for field, v in pairs(x) do
            if not ignore[field] and not require("luassert.util").deepcompare(v, y[field], true) then
              changed[#changed + 1] = field
            end
          end
          table.sort(changed)
          if k == 1 and x.is_target_match == true then hits = hits + 1 end
          if #changed > 0 then
            assert.are.equal(1, k, "only the first agent changes")
            assert.is_true(x.is_target_match)
            assert.are.equal(0, i % 3)                            -- the documented rule
            assert.are.same({ "is_target_match", "reasoning_md", "score_normalized_0_100",
              "selected_level_key", "selected_level_label" }, changed)
            assert.is_false(y.is_target_match)
            assert.is_true(y.score_normalized_0_100 < x.score_normalized_0_100)
            assert.matches("^%*%*Verdict: " .. y.selected_level_label:gsub("%p", "%%%0") .. "%.%*%*", y.reasoning_md)
            lost = lost + 1
            assert.is_true(b[i].overall_score_normalized_0_100 <= a[i].overall_score_normalized_0_100)
          end
        end
      end
      assert.is_true(lost >= hits * 0.25 and lost <= hits * 0.42, lost .. " of " .. hits)
      local ra, rb = run_of("cmp-a-300"), run_of("cmp-b-300")
      assert.are.equal(ra.summary.target_match_count - lost, rb.summary.target_match_count)
      assert.is_true(rb.summary.overall_score_mean < ra.summary.overall_score_mean)
      assert.are.same({ ra.summary.failed_call_count, ra.summary.insufficient_evidence_count },
        { rb.summary.failed_call_count, rb.summary.insufficient_evidence_count })
    end)

    it("work for any N, and agent-results of cmp-b match its call results", function()
      assert.are.same(flat_results(calls_of("cmp-b-40")), walk("/v1/evals/runs/cmp-b-40/agent-results", 13))
      assert.are.equal(0, run_of("cmp-b-0").resolved_call_count)
    end)
  end)

  describe("progress runs", function()
    local function seq(id, n)
      local out = {}
      for i = 1, n do out[i] = run_of(id) end
      return out
    end

    it("progress-N goes PENDING, QUEUED, RUNNING twice, then COMPLETE", function()
      local runs = seq("progress-30%40a", 6)
      local st, done = {}, {}
      for i, r in ipairs(runs) do st[i], done[i] = r.status, r.completed_atom_count end
      assert.are.same({ "PENDING", "QUEUED", "RUNNING", "RUNNING", "COMPLETE", "COMPLETE" }, st)
      assert.are.same({ 0, 0, 30, 60, 90, 90 }, done)
      assert.are.equal(cjson.null, runs[1].started_at)
      assert.matches(ISO, runs[2].started_at)
      for i = 1, 4 do
        assert.are.same({ cjson.null, cjson.null, cjson.null }, { runs[i].completed_at, runs[i].summary, runs[i].billable_cost_usd })
      end
      assert.matches(ISO, runs[5].completed_at)
      local complete = 0
      for _, c in ipairs(calls_of("progress-30%40a")) do
        assert.is_true(c.status == "COMPLETE" or c.status == "FAILED" or c.status == "INSUFFICIENT_EVIDENCE")
        if c.status == "COMPLETE" then complete = complete + 1 end
      end
      assert.are.equal(complete, runs[5].summary.successful_call_count)
      assert.are.equal("progress-30@a", runs[5].id)
      assert.are.equal(7, api.stats("progress-30@a").requests)            -- 6 GETs, 1 call-results
    end)

    it("keeps its count per tag, shows it in call-results without moving it, and resets", function()
      seq("progress-30%40b", 3)
      assert.are.equal("PENDING", run_of("progress-30%40c").status)        -- own state
      for _ = 1, 3 do
        local _, body = ok_page("progress-30%40b", "limit=1")
        assert.are.equal("RUNNING", body.run_status)
        assert.are.equal(30, body.run_resolved_call_count)
      end
      assert.are.equal(60, run_of("progress-30%40b").completed_atom_count)  -- request 4
      api.reset()
      assert.are.equal("PENDING", run_of("progress-30%40b").status)
    end)

    it("progress-fail-N ends FAILED and progress-cancel-N ends CANCELLED", function()
      local f = seq("progress-fail-30", 6)
      assert.are.same({ "RUNNING", "FAILED", "FAILED" }, { f[4].status, f[5].status, f[6].status })
      assert.are.equal(60, f[5].completed_atom_count)
      assert.are.equal("JUDGE_PROVIDER_UNAVAILABLE", f[5].error_code)
      assert.is_string(f[5].error_message)
      assert.are.equal(cjson.null, f[4].error_code)
      assert.matches(ISO, f[5].completed_at)
      local c = seq("progress-cancel-30", 5)
      assert.are.same({ "PENDING", "QUEUED", "RUNNING", "RUNNING", "CANCELLED" },
        { c[1].status, c[2].status, c[3].status, c[4].status, c[5].status })
      assert.are.same({ 60, cjson.null, cjson.null }, { c[5].completed_atom_count, c[5].error_code, c[5].summary })
      assert.matches(ISO, c[5].completed_at)
      assert.is_true(c[5].billable_cost_usd > 0)
    end)
  end)

  describe("TLS", function()
    it("verifies with the generated certificate and fails without it", function()
      local url = "/v1/evals/runs/run-5/call-results"
      assert.are.equal(200, http(api.tls_url .. url, { flags = "--cacert " .. q(api.cert) }).status)
      local localhost = api.tls_url:gsub("127%.0%.0%.1", "localhost")
      assert.are.equal(200, http(localhost .. url, { flags = "--cacert " .. q(api.cert) }).status)
      assert.are.equal(60, http(api.tls_url .. url).exit)   -- CURLE_PEER_FAILED_VERIFICATION
    end)
  end)

  describe("start and stop", function()
    it("starts a second server, and stop() closes the port and removes the dir", function()
      local other = fakeapi.start()
      assert.are_not.equal(api.base_url, other.base_url)
      assert.are.equal(200, page("run-1", nil).status)
      assert.are.equal(200, http(other.base_url .. "/_stats?run=x").status)
      other.stop()
      other.stop()                                        -- idempotent
      assert.are.equal(7, http(other.base_url .. "/_stats?run=x").exit)   -- connection refused
      assert.is_nil(io.open(other.dir .. "/nginx.conf"))
    end)

    it("fails loudly, with nginx's error log, when nginx cannot start", function()
      local dir = sh("mktemp -d"):gsub("%s+$", "")
      local out = sh("FAKEAPI_EXTRA_CONF='bogus_directive on;' sh " .. q(fakeapi.script)
        .. " start " .. q(dir) .. " 2>&1; echo \"exit=$?\"")
      os.execute("rm -rf " .. q(dir))
      assert.matches("exit=1", out)
      assert.matches("bogus_directive", out)
      assert.matches("error.log", out)
      assert.is_nil(out:find("BASE_URL", 1, true))
    end)

    it("stops the shared server too", function()
      local base = api.base_url
      api.stop()
      assert.are.equal(7, http(base .. "/_stats?run=x").exit)
      api = nil
    end)
  end)
end)
