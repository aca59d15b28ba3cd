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
      local r = http(api.base_url .. "/v1/evals/runs/run-5")
      assert.are.equal(404, r.status)
      assert.are.equal("NOT_FOUND", error_code(r))
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
