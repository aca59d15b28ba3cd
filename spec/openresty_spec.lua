-- blandeval inside real nginx (Debian's Lua module, LuaJIT): examples/nginx.conf and
-- its handler, served against the fake API, with the test-only locations of
-- spec/support/example-test.conf.
local fakeapi = require "fakeapi"
local blandeval = require "blandeval"
local cjson = require "cjson"

local function sh(cmd) return require("shell").sh(cmd .. " 2>&1") end

describe("blandeval in nginx (examples/nginx.conf)", function()
  local api, app_dir, app
  setup(function()
    api = fakeapi.start()
    local fake_port = api.base_url:match(":(%d+)$")
    app_dir = (sh("mktemp -d"):gsub("%s+$", ""))
    local out = sh(("EXAMPLE_TEST_LOCATIONS=1 sh spec/support/example-nginx.sh start %s %s")
      :format(app_dir, fake_port))
    app = out:match("APP_URL=(%S+)")
    assert(app, out)
  end)
  teardown(function()
    sh("sh spec/support/fakeapi.sh stop " .. app_dir .. " && rm -rf " .. app_dir)
    if api then api.stop() end
  end)

  local function get(path)
    local out = sh(("curl -s -w '\\n%%{http_code}' %q"):format(app .. path))
    local body, code = out:match("^(.-)%s*\n(%d+)$")
    return body, tonumber(code)
  end

  it("GET /runs/{id}/failed gives the same failed calls as the client in plain Lua", function()
    local body, code = get("/runs/run-250/failed")
    assert.are.equal(200, code, body)
    local got = cjson.decode(body)
    -- the same summary, computed here with the libcurl transport
    local c = blandeval.new { api_key = "test-key", base_url = api.base_url }
    local want, n = {}, 0
    for r in c:call_results("run-250", { include_agent_results = true }) do
      n = n + 1
      if r.failed_agent_count > 0 then
        local agents = 0
        for _, v in ipairs(r.agent_results) do if v.failed then agents = agents + 1 end end
        want[#want + 1] = { r.call_id, agents }
      end
    end
    assert.are.equal(n, got.calls)
    assert.are.equal(250, got.resolved_calls)
    assert.are.equal("COMPLETE", got.run_status)
    assert.are.equal(#want, #got.failed)
    assert.is_true(#want > 0)
    for i, w in ipairs(want) do
      assert.are.equal(w[1], got.failed[i].call_id)
      assert.are.equal(w[2], #got.failed[i].failed_agents)
      assert.is_string(got.failed[i].failed_agents[1].agent)
    end
    -- a run whose id needs escaping reaches the API as one path segment (nginx's own
    -- location matching decodes the incoming URI: "run-a b?c&d")
    body, code = get("/runs/run-a%20b%3Fc%26d/failed")
    assert.are.equal(200, code, body)
    assert.are.equal(3, cjson.decode(body).calls)
  end)

  it("reports API errors with their status", function()
    local body, code = get("/runs/no-such-run/failed")
    assert.are.equal(404, code)
    local err = cjson.decode(body).error
    assert.are.equal("api", err.kind)
    assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
    assert.is_string(err.request_id)
  end)

  it("pages, retries (waiting with ngx.sleep) and never repeats an item", function()
    assert.are.equal("ok 250", (get("/_t/count/ngx/run-250")))
    local run = "fault-503-once@ngx" .. os.time()
    assert.are.equal("ok 60", (get("/_t/count/ngx/" .. run)))
    assert.are.equal(5, api.stats(run).requests)        -- 3 pages; pages 2 and 3 retried once
    run = "fault-429@ngx" .. os.time()
    assert.are.equal("ok 60", (get("/_t/count/ngx/" .. run)))
    local body = get("/_t/count/ngx/fault-500-forever@ngx" .. os.time())
    assert.truthy(body:find("^error blandeval: api error, HTTP 500"), body)
    assert.truthy(body:find("attempts=3", 1, true), body)
    body = get("/_t/count/ngx/fault-no-cursor@ngx" .. os.time())
    assert.truthy(body:find("protocol error", 1, true), body)
  end)

  it("gives the same counts through both transports", function()
    for _, run in ipairs({ "run-0", "run-1", "run-100", "opaque-60" }) do
      assert.are.equal((get("/_t/count/curl/" .. run)), (get("/_t/count/ngx/" .. run)), run)
    end
  end)

  it("refuses, with a clear error, to run where nginx has no subrequests", function()
    local body = get("/_t/timer")
    assert.truthy(body:find("needs a request phase", 1, true), body)
    assert.truthy(body:find('"timer"', 1, true), body)
  end)

  it("checks the options that belong to nginx's configuration, and keeps the key out of tostring", function()
    local body = get("/_t/options")
    assert.truthy(body:find("false bad argument #1 to 'new' (option 'cainfo' is for the curl transport", 1, true), body)
    assert.truthy(body:find("blandeval.client (ngx transport via /_bland)", 1, true), body)
    assert.is_nil(body:find("secret-key", 1, true))
  end)

  it("does not block the worker: concurrent requests wait on the API together", function()
    -- 20 requests, each paging slow50-100 (4 pages; the fake API holds each page 50 ms).
    -- The fake API counts how many of the run's requests it holds at once: with the
    -- worker blocked on one request at a time that is 1; here the pages overlap.
    local run = "slow50-100"
    local urls = {}
    for i = 1, 20 do urls[i] = ("%q"):format(app .. "/_t/count/ngx/" .. run) end
    local out = sh("curl -s --no-progress-meter -Z --parallel-immediate --parallel-max 20 " .. table.concat(urls, " "))
    local _, oks = out:gsub("ok 100", "")
    assert.are.equal(20, oks, out)
    assert.is_true(api.stats(run).max_in_flight >= 10, "at most " .. api.stats(run).max_in_flight .. " at once")
    -- the libcurl transport, forced, blocks the worker: one request at a time
    run = "slow1-100"
    for i = 1, 5 do urls[i] = ("%q"):format(app .. "/_t/count/curl/" .. run) end
    out = sh("curl -s --no-progress-meter -Z --parallel-immediate --parallel-max 5 " .. table.concat(urls, " ", 1, 5))
    _, oks = out:gsub("ok 100", "")
    assert.are.equal(5, oks, out)
    assert.are.equal(1, api.stats(run).max_in_flight)
  end)
end)
